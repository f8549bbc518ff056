//go:build e2e

package main

import (
	"os"

	"github.com/portclaim/portclaim/pkg/yield"
	"github.com/portclaim/portclaim/pkg/yield/testhooks"
)

// Built for the end-to-end tests (go build -tags e2e), portclaim pauses
// and kills itself where its environment asks (package testhooks); a
// production build has no such hooks.
func init() { yield.SetTestHooks(testhooks.FromEnv(os.Getenv)) }
