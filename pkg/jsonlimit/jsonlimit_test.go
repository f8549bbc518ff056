package jsonlimit

import (
	"strings"
	"testing"
)

func TestCheckDepth(t *testing.T) {
	for _, c := range []struct {
		in string
		ok bool
	}{
		{`{"a":[{"b":[1]}]}`, true},
		{`[[[[[1]]]]]`, false},
		{`{"a":"[[[[[[[[\"[["}`, true},
		{`{"a":"\\"}`, true},
	} {
		err := CheckDepth([]byte(c.in), 4)
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.in, err)
		}
		if err != nil && !strings.Contains(err.Error(), "more than 4 levels") {
			t.Errorf("message %v", err)
		}
	}
	// Closings first would otherwise make room for deeper nesting.
	in := strings.Repeat("]", 10) + strings.Repeat("[", 12)
	if err := CheckDepth([]byte(in), 4); err == nil || !strings.Contains(err.Error(), "without its opening") {
		t.Errorf("%s: %v", in, err)
	}
}
