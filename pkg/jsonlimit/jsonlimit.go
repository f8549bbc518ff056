// Package jsonlimit bounds what portclaim's JSON readers accept before
// any recursive parser sees it.
package jsonlimit

import "fmt"

// CheckDepth refuses JSON nested deeper than max before any recursive
// parser sees it (ten megabytes of "[" would exhaust the stack). It
// tracks strings and their escapes so that brackets inside them do not
// count; it does not otherwise validate.
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
			depth--
		}
	}
	return nil
}
