package server

import "strings"

// Subject tokens and wildcards.
const (
	tokenSep = '.'
	pwc      = '*' // matches exactly one token
	fwc      = '>' // matches one or more trailing tokens
)

// IsValidSubject reports whether subject can be subscribed to: tokens separated by
// '.', none empty, no whitespace, and '>' only as the last token. A token that
// merely contains '*' or '>' among other characters is a literal, as in
// nats-server.
func IsValidSubject(subject string) bool {
	if subject == "" {
		return false
	}
	sawFWC := false
	for t := range strings.SplitSeq(subject, ".") {
		if len(t) == 0 || sawFWC {
			return false
		}
		if len(t) > 1 {
			if strings.ContainsAny(t, "\t\n\f\r ") {
				return false
			}
			continue
		}
		switch t[0] {
		case fwc:
			sawFWC = true
		case ' ', '\t', '\n', '\r', '\f':
			return false
		}
	}
	return true
}

// IsValidLiteralSubject reports whether subject is valid to publish to in pedantic
// mode: no empty tokens and no wildcard tokens.
func IsValidLiteralSubject(subject string) bool {
	if subject == "" {
		return false
	}
	for t := range strings.SplitSeq(subject, ".") {
		if len(t) == 0 {
			return false
		}
		if len(t) == 1 && (t[0] == pwc || t[0] == fwc) {
			return false
		}
	}
	return true
}

// subjectIsLiteral reports whether subject holds no wildcard token.
func subjectIsLiteral(subject string) bool {
	for i := 0; i < len(subject); i++ {
		c := subject[i]
		if c != pwc && c != fwc {
			continue
		}
		if (i == 0 || subject[i-1] == tokenSep) && (i+1 == len(subject) || subject[i+1] == tokenSep) {
			return false
		}
	}
	return true
}
