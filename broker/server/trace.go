package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"strings"
)

// LevelTrace is the slog level of protocol traces (-V).
const LevelTrace = slog.Level(-8)

// redactConnect returns what the trace shows of a CONNECT argument: the
// argument decoded exactly as authentication decodes it (encoding/json, whose
// key matching ignores case and reads \u escapes, so "PASS" and "p\u0061ss"
// both set the password), then encoded again with every secret replaced by
// [REDACTED]. A spelling that authenticates therefore cannot reach the log,
// and nothing is shown that authentication did not read. A string field that
// contains a secret (a client that names itself after its password) is
// redacted too.
func redactConnect(arg []byte) []byte {
	var o connectOpts
	if err := json.Unmarshal(arg, &o); err != nil {
		return []byte("[" + strconv.Itoa(len(arg)) + " bytes that do not decode: not shown]")
	}
	var secrets []string
	for _, f := range []*string{&o.Password, &o.Token, &o.Sig, &o.JWT, &o.Nkey} {
		if *f != "" {
			secrets = append(secrets, *f)
			*f = redacted
		}
	}
	for _, f := range []*string{&o.Username, &o.Name, &o.Lang, &o.Version, &o.Account} {
		for _, secret := range secrets {
			if strings.Contains(*f, secret) {
				*f = redacted
			}
		}
	}
	out, err := json.Marshal(&o)
	if err != nil {
		return []byte("[not shown]")
	}
	return out
}

const redacted = "[REDACTED]"

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
