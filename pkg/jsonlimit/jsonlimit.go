// Package jsonlimit bounds what portclaim's JSON readers accept before
// any recursive parser sees it.
package jsonlimit

import "fmt"

// CheckDepth refuses JSON nested deeper than max before any recursive
// parser sees it (ten megabytes of "[" would exhaust the stack). It
// tracks strings and their escapes so that brackets inside them do not
// count; it does not otherwise validate, but for a closing bracket
// without its opening.
func CheckDepth(data []byte, max int) error {
	depth := 0
	inString, escaped := false, false
	for i, c := range data {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return fmt.Errorf("nested more than %d levels deep (at byte %d)", max, i)
			}
		case c == '}' || c == ']':
			// More closing than opening: the input is not JSON, and
			// counting on from below zero would let the next openings
			// nest deeper than max.
			if depth--; depth < 0 {
				return fmt.Errorf("a closing %q without its opening (at byte %d)", c, i)
			}
		}
	}
	return nil
}
