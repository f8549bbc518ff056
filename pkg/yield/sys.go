package yield

import (
	"github.com/portclaim/portclaim/pkg/systemd"
)

func jobText(result systemd.JobResult, err error) string {
	switch {
	case err != nil:
		return err.Error()
	case result == "":
		return "timeout"
	}
	return string(result)
}
