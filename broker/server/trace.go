package server

import (
	"context"
	"log/slog"
	"regexp"
)

// LevelTrace is the slog level of protocol traces (-V).
const LevelTrace = slog.Level(-8)

// Fields of CONNECT whose values never reach a log: passwords, tokens and
// signatures. As nats-server's removeSecretsFromTrace.
var (
	secretPrefixPat = regexp.MustCompile(`"?\s*(?:auth_token\S*?|pass\S*?)"?\s*[:=]\s*"?([^",\r\n}]*)`)
	secretExactPat  = regexp.MustCompile(`(?:^|[^A-Za-z0-9_])"?\s*(?:proxy_sig|nkey|sig|jwt)"?\s*[:=]\s*"?([^",\r\n}]*)`)
)

// redactConnect returns a copy of a CONNECT argument with secrets replaced by
// [REDACTED].
func redactConnect(arg []byte) []byte {
	return redact(secretExactPat, redact(secretPrefixPat, arg))
}

func redact(pat *regexp.Regexp, in []byte) []byte {
	m := pat.FindAllSubmatchIndex(in, -1)
	if len(m) == 0 {
		return in
	}
	out := append([]byte(nil), in...)
	for i := len(m) - 1; i >= 0; i-- {
		if len(m[i]) < 4 || m[i][2] < 0 {
			continue
		}
		start, end := m[i][2], m[i][3]
		out = append(out[:start], append([]byte("[REDACTED]"), out[end:]...)...)
	}
	return out
}

func (c *client) traceIn(op string, arg []byte) {
	c.srv.logger.Log(context.Background(), LevelTrace, "<<- "+op, "cid", c.cid, "arg", string(arg))
}

func (c *client) traceOut(op string, arg []byte) {
	c.srv.logger.Log(context.Background(), LevelTrace, "->> "+op, "cid", c.cid, "arg", string(arg))
}

func (c *client) traceMsg(msg []byte) {
	const maxTraced = 128
	if len(msg) > maxTraced {
		msg = msg[:maxTraced]
	}
	c.srv.logger.Log(context.Background(), LevelTrace, "<<- MSG_PAYLOAD", "cid", c.cid, "payload", string(msg))
}
