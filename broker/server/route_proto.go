package server

// The route wire protocol, nats-server's (server/route.go): every interest
// and every message names its account. Routes speak only to other natsforge
// brokers.
//
//	INFO {json}                                 both sides, first; again later to gossip
//	CONNECT {json}                              the dialling side, with its credentials
//	RS+ <account> <subject> [<queue> <weight>]  interest appears, or a queue group's weight changes
//	RS- <account> <subject> [<queue>]           interest is gone
//	RMSG <account> <subject> [+ <reply> | | ] [<queue>...] <size>
//	HMSG <account> <subject> [+ <reply> | | ] [<queue>...] <hdr size> <size>
//	PING, PONG, -ERR '<text>'
//
// In RMSG, "+ <reply>" says a reply subject and then queue names follow, "|" says
// queue names follow without a reply; otherwise the optional third field is the
// reply. A queue named in RMSG asks the receiver to deliver to one of its local
// members of that group; plain subscribers always get the message. A message
// received from a route is never sent on to another route, so it crosses at most
// one hop.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
)

// routeMaxPayload bounds one routed message; the sending server already held
// it to its own max_payload.
const routeMaxPayload = 64 << 20

var errRouteProtocol = errors.New("route protocol error")

// routeInfo is the JSON of a route INFO.
type routeInfo struct {
	ID      string `json:"server_id"`
	Name    string `json:"server_name"`
	Version string `json:"version,omitempty"`
	Cluster string `json:"cluster,omitempty"`
	// Host and Port are where this server accepts routes. An empty or unspecified
	// host means "the address you reached me at".
	Host string `json:"host,omitempty"`
	Port int    `json:"port,omitempty"`
	// ClientHost and ClientPort are where this server accepts clients, advertised
	// to the cluster's clients unless NoAdvertise.
	ClientHost   string `json:"client_host,omitempty"`
	ClientPort   int    `json:"client_port,omitempty"`
	NoAdvertise  bool   `json:"no_advertise,omitempty"`
	AuthRequired bool   `json:"auth_required,omitempty"`
	// TLSRequired opens a route with TLS (route_tls.go).
	TLSRequired bool `json:"tls_required,omitempty"`
	// Peers are the other servers this one has routes to, so that a server that
	// was configured with only one seed meets the whole mesh.
	Peers    []routePeer `json:"peers,omitempty"`
	LameDuck bool        `json:"ldm,omitempty"`
}

// routePeer is one gossiped server: its id and route address (no credentials).
type routePeer struct {
	ID   string `json:"id"`
	Host string `json:"host"`
	Port int    `json:"port"`
}

// routeConnect is the JSON of a route CONNECT.
type routeConnect struct {
	User    string `json:"user,omitempty"`
	Pass    string `json:"pass,omitempty"`
	ID      string `json:"server_id"`
	Name    string `json:"name"`
	Cluster string `json:"cluster,omitempty"`
	// Nonce tells apart two connections the same server dialled to the same
	// peer, so both sides settle on the same one.
	Nonce string `json:"nonce,omitempty"`
}

// routeMsgArgs are the arguments of a routed message.
type routeMsgArgs struct {
	acc, subject, reply []byte
	queues              [][]byte
	hdr                 int // header bytes at the start of the message; -1 without
	size                int // total bytes: headers and payload
}

// parseRouteMsgArgs parses the arguments of RMSG (or HMSG, headers set):
// <account> <subject> [+ <reply> <queue>... | | <queue>... | <reply>] [<hdr size>] <size>.
// The slices alias arg.
func parseRouteMsgArgs(pa *routeMsgArgs, arg []byte, headers bool) error {
	var a [16][]byte
	f := splitArgs(a[:0], arg)
	sizes := 1
	if headers {
		sizes = 2
	}
	if len(f) < 2+sizes {
		return fmt.Errorf("%w: short routed message %q", errRouteProtocol, arg)
	}
	pa.acc, pa.subject, pa.reply, pa.queues = f[0], f[1], nil, pa.queues[:0]
	mid := f[2 : len(f)-sizes]
	switch {
	case len(mid) == 0:
	case len(mid[0]) == 1 && mid[0][0] == '+':
		if len(mid) < 2 {
			return fmt.Errorf("%w: routed message with + and no reply", errRouteProtocol)
		}
		pa.reply = mid[1]
		pa.queues = append(pa.queues, mid[2:]...)
	case len(mid[0]) == 1 && mid[0][0] == '|':
		pa.queues = append(pa.queues, mid[1:]...)
	case len(mid) == 1:
		pa.reply = mid[0]
	default:
		return fmt.Errorf("%w: routed message has %d fields", errRouteProtocol, len(f))
	}
	szb := f[len(f)-1]
	pa.size = parseSize(szb)
	if pa.size < 0 || pa.size > routeMaxPayload {
		return fmt.Errorf("%w: bad routed message size %q", errRouteProtocol, szb)
	}
	pa.hdr = -1
	if headers {
		hdb := f[len(f)-2]
		pa.hdr = parseSize(hdb)
		if pa.hdr < 0 || pa.hdr > pa.size {
			return fmt.Errorf("%w: bad routed message header size %q", errRouteProtocol, hdb)
		}
	}
	return nil
}

// parseRemoteSub parses RS+ <account> <subject> [<queue> <weight>]. The
// slices alias arg.
func parseRemoteSub(arg []byte) (acc, subject, queue []byte, weight int32, err error) {
	var a [5][]byte
	f := splitArgs(a[:0], arg)
	switch len(f) {
	case 2:
		return f[0], f[1], nil, 0, nil
	case 4:
		w := parseSize(f[3])
		if w < 1 || w > math.MaxInt32 {
			return nil, nil, nil, 0, fmt.Errorf("%w: bad queue weight %q", errRouteProtocol, f[3])
		}
		return f[0], f[1], f[2], int32(w), nil
	}
	return nil, nil, nil, 0, fmt.Errorf("%w: RS+ takes 2 or 4 fields: %q", errRouteProtocol, arg)
}

// parseRemoteUnsub parses RS- <account> <subject> [<queue>]. The slices
// alias arg.
func parseRemoteUnsub(arg []byte) (acc, subject, queue []byte, err error) {
	var a [4][]byte
	f := splitArgs(a[:0], arg)
	switch len(f) {
	case 2:
		return f[0], f[1], nil, nil
	case 3:
		return f[0], f[1], f[2], nil
	}
	return nil, nil, nil, fmt.Errorf("%w: RS- takes 2 or 3 fields: %q", errRouteProtocol, arg)
}

// appendRouteSub appends RS+ for a plain subject (queue nil) or a queue group
// with its weight (the number of local members).
func appendRouteSub(buf []byte, acc string, subject, queue []byte, weight int32) []byte {
	buf = append(buf, "RS+ "...)
	buf = append(buf, acc...)
	buf = append(buf, ' ')
	buf = append(buf, subject...)
	if queue != nil {
		buf = append(buf, ' ')
		buf = append(buf, queue...)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, int64(weight), 10)
	}
	return append(buf, "\r\n"...)
}

// appendRouteUnsub appends RS-.
func appendRouteUnsub(buf []byte, acc string, subject, queue []byte) []byte {
	buf = append(buf, "RS- "...)
	buf = append(buf, acc...)
	buf = append(buf, ' ')
	buf = append(buf, subject...)
	if queue != nil {
		buf = append(buf, ' ')
		buf = append(buf, queue...)
	}
	return append(buf, "\r\n"...)
}

// appendRouteMsgProto appends the control line of RMSG (hdr < 0) or HMSG (hdr
// header bytes at the start of a message of size bytes); the message and its
// CRLF follow it on the wire.
func appendRouteMsgProto(buf []byte, acc string, subject, reply []byte, hdr, size int, queues [][]byte) []byte {
	if hdr >= 0 {
		buf = append(buf, "HMSG "...)
	} else {
		buf = append(buf, "RMSG "...)
	}
	buf = append(buf, acc...)
	buf = append(buf, ' ')
	buf = append(buf, subject...)
	switch {
	case len(queues) > 0 && len(reply) > 0:
		buf = append(buf, " + "...)
		buf = append(buf, reply...)
	case len(queues) > 0:
		buf = append(buf, " |"...)
	case len(reply) > 0:
		buf = append(buf, ' ')
		buf = append(buf, reply...)
	}
	for _, q := range queues {
		buf = append(buf, ' ')
		buf = append(buf, q...)
	}
	buf = append(buf, ' ')
	if hdr >= 0 {
		buf = strconv.AppendInt(buf, int64(hdr), 10)
		buf = append(buf, ' ')
	}
	buf = strconv.AppendInt(buf, int64(size), 10)
	return append(buf, "\r\n"...)
}

// appendRouteJSON appends "<verb> {json}\r\n".
func appendRouteJSON(buf []byte, verb string, v any) []byte {
	b, _ := json.Marshal(v)
	buf = append(buf, verb...)
	buf = append(buf, ' ')
	buf = append(buf, b...)
	return append(buf, "\r\n"...)
}

// cloneBytes copies b off a read buffer; nil stays nil.
func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

type routeOpKind int

const (
	routeOpInfo routeOpKind = iota + 1
	routeOpConnect
	routeOpSub
	routeOpUnsub
	routeOpMsg
	routeOpPing
	routeOpPong
	routeOpErr
)

// routeOp is one route operation. Its slices are valid until the next read.
type routeOp struct {
	kind    routeOpKind
	arg     []byte // INFO/CONNECT JSON, -ERR text, RS+/RS- arguments
	msg     routeMsgArgs
	payload []byte // RMSG/HMSG: headers and body, without the trailing CRLF
}

// routeMaxControlLine bounds a route control line (many queue names fit).
const routeMaxControlLine = 64 * 1024

// routeReader reads route operations. Routes are a handful of connections
// carrying traffic the sending server already checked, so a buffered line
// reader is simpler than the client parser's state machine and fast enough.
type routeReader struct {
	r       *bufio.Reader
	payload []byte
	queues  [][]byte
}

func newRouteReader(r io.Reader) *routeReader {
	return &routeReader{r: bufio.NewReaderSize(r, routeMaxControlLine)}
}

func (rr *routeReader) next() (*routeOp, error) {
	line, err := rr.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return nil, fmt.Errorf("%w: control line too long", errRouteProtocol)
		}
		return nil, err
	}
	line = bytes.TrimRight(line, "\r\n")
	verb, rest, _ := bytes.Cut(line, []byte{' '})
	op := &routeOp{}
	switch {
	case bytes.EqualFold(verb, []byte("PING")):
		op.kind = routeOpPing
	case bytes.EqualFold(verb, []byte("PONG")):
		op.kind = routeOpPong
	case bytes.EqualFold(verb, []byte("INFO")):
		op.kind, op.arg = routeOpInfo, bytes.TrimSpace(rest)
	case bytes.EqualFold(verb, []byte("CONNECT")):
		op.kind, op.arg = routeOpConnect, bytes.TrimSpace(rest)
	case bytes.EqualFold(verb, []byte("-ERR")):
		op.kind, op.arg = routeOpErr, bytes.Trim(bytes.TrimSpace(rest), "'")
	case bytes.EqualFold(verb, []byte("RS+")):
		op.kind, op.arg = routeOpSub, rest
	case bytes.EqualFold(verb, []byte("RS-")):
		op.kind, op.arg = routeOpUnsub, rest
	case bytes.EqualFold(verb, []byte("RMSG")), bytes.EqualFold(verb, []byte("HMSG")):
		op.kind = routeOpMsg
		op.msg.queues = rr.queues[:0]
		if err := parseRouteMsgArgs(&op.msg, rest, verb[0] == 'H' || verb[0] == 'h'); err != nil {
			return nil, err
		}
		// The control line lives in the reader's buffer, which the payload read
		// may overwrite: copy what must survive it.
		op.msg.acc = cloneBytes(op.msg.acc)
		op.msg.subject = cloneBytes(op.msg.subject)
		op.msg.reply = cloneBytes(op.msg.reply)
		for i, q := range op.msg.queues {
			op.msg.queues[i] = cloneBytes(q)
		}
		rr.queues = op.msg.queues
		n := op.msg.size + 2
		if cap(rr.payload) < n {
			rr.payload = make([]byte, n)
		}
		buf := rr.payload[:n]
		if _, err := io.ReadFull(rr.r, buf); err != nil {
			return nil, err
		}
		if buf[n-2] != '\r' || buf[n-1] != '\n' {
			return nil, fmt.Errorf("%w: routed message not followed by CRLF", errRouteProtocol)
		}
		op.payload = buf[:n-2]
	default:
		return nil, fmt.Errorf("%w: unknown operation %q", errRouteProtocol, verb)
	}
	return op, nil
}
