package server

// The parser is a byte-at-a-time state machine over the read buffer, after
// nats-server's. Arguments and payloads are slices of the read buffer; only a
// command split across two reads is copied (into scratch, or a fresh buffer
// for a large payload). Parsing is separate from the process* handlers in
// proto.go and deliver.go.

type parserState int

const (
	opStart parserState = iota
	opPlus
	opPlusO
	opPlusOK
	opMinus
	opMinusE
	opMinusER
	opMinusERR
	opMinusERRSpc
	minusErrArg
	opC
	opCO
	opCON
	opCONN
	opCONNE
	opCONNEC
	opCONNECT
	connectArg
	opH
	opHP
	opHPU
	opHPUB
	opHPUBSpc
	hpubArg
	opP
	opPU
	opPUB
	opPUBSpc
	pubArg
	opPI
	opPIN
	opPING
	opPO
	opPON
	opPONG
	msgPayload
	msgEndR
	msgEndN
	opS
	opSU
	opSUB
	opSUBSpc
	subArg
	opU
	opUN
	opUNS
	opUNSU
	opUNSUB
	opUNSUBSpc
	unsubArg
	opI
	opIN
	opINF
	opINFO
	infoArg
)

// maxControlLineScratch is the size of the buffer for split control lines and
// small split payloads.
const maxControlLineScratch = 4096

// parseState is owned by the connection's read goroutine.
type parseState struct {
	state  parserState
	as     int // start of the current argument in the read buffer
	drop   int // 1 when the argument ended in \r
	pa     pubArgs
	argBuf []byte // the control line, when split across reads
	msgBuf []byte // the payload, when split across reads
	// scratch backs argBuf and small msgBufs.
	scratch [maxControlLineScratch]byte
	// splitBuf backs larger split payloads, kept for the next one (up to
	// maxRetainedSplitBuf): over TLS a read holds at most one 16 KiB record,
	// so every message of that size or more arrives split.
	splitBuf []byte
}

// maxRetainedSplitBuf bounds the split-payload buffer a connection keeps.
const maxRetainedSplitBuf = 64<<10 + 2

// pubArgs are the arguments of the PUB/HPUB being parsed.
type pubArgs struct {
	arg     []byte
	subject []byte
	reply   []byte
	szb     []byte
	hdb     []byte
	size    int // total size: headers and payload
	hdr     int // header size; -1 without headers
}

func (ps *parseState) resetArgs() {
	ps.argBuf, ps.msgBuf = nil, nil
	ps.pa = pubArgs{hdr: -1}
}

// parse runs buf through the state machine, calling the process* handlers as
// commands complete. A non-nil error means the connection must end (see
// errors.go for which errors have already been reported to the client).
func (c *client) parse(buf []byte) error {
	var i int
	var b byte

	c.mu.Lock()
	awaitingAuth := c.flags.has(flagExpectConnect) && !c.flags.has(flagConnectReceived)
	c.mu.Unlock()
	mcl := c.mcl
	trace := c.srv.trace

	for i = 0; i < len(buf); i++ {
		b = buf[i]
		switch c.state {
		case opStart:
			if b != 'C' && b != 'c' && awaitingAuth {
				if !c.authenticateNoAuthUser() {
					c.authViolation(authReasonNoCredentials)
					return errAuthentication
				}
				awaitingAuth = false
			}
			switch b {
			case 'P', 'p':
				c.state = opP
			case 'H', 'h':
				c.state = opH
			case 'S', 's':
				c.state = opS
			case 'U', 'u':
				c.state = opU
			case 'C', 'c':
				c.state = opC
			case 'I', 'i':
				c.state = opI
			case '+':
				c.state = opPlus
			case '-':
				c.state = opMinus
			default:
				goto parseErr
			}
		case opH:
			switch b {
			case 'P', 'p':
				c.state = opHP
			default:
				goto parseErr
			}
		case opHP:
			if b != 'U' && b != 'u' {
				goto parseErr
			}
			c.state = opHPU
		case opHPU:
			if b != 'B' && b != 'b' {
				goto parseErr
			}
			c.state = opHPUB
		case opHPUB:
			if b != ' ' && b != '\t' {
				goto parseErr
			}
			c.state = opHPUBSpc
		case opHPUBSpc:
			if b == ' ' || b == '\t' {
				continue
			}
			c.pa.hdr = 0
			c.state = hpubArg
			c.as = i
		case hpubArg, pubArg:
			switch b {
			case '\r':
				c.drop = 1
			case '\n':
				arg := c.takeArg(buf, i)
				if err := c.checkControlLine(arg, mcl); err != nil {
					return err
				}
				if trace {
					c.traceIn(c.opName(), arg)
				}
				var err error
				if c.state == hpubArg {
					err = c.processHeaderPub(arg)
				} else {
					err = c.processPub(arg)
				}
				if err != nil {
					return err
				}
				c.drop, c.as, c.state = 0, i+1, msgPayload
				// Jump over the payload when it is all in this buffer; when
				// it is not, the loop ends and the split is handled below.
				if c.msgBuf == nil {
					i = c.as + c.pa.size - 2
				}
			default:
				c.argByte(b)
			}
		case opP:
			switch b {
			case 'U', 'u':
				c.state = opPU
			case 'I', 'i':
				c.state = opPI
			case 'O', 'o':
				c.state = opPO
			default:
				goto parseErr
			}
		case opPU:
			if b != 'B' && b != 'b' {
				goto parseErr
			}
			c.state = opPUB
		case opPUB:
			if b != ' ' && b != '\t' {
				goto parseErr
			}
			c.state = opPUBSpc
		case opPUBSpc:
			if b == ' ' || b == '\t' {
				continue
			}
			c.pa.hdr = -1
			c.state = pubArg
			c.as = i
		case msgPayload:
			if c.msgBuf != nil {
				// Copy as much as this buffer holds and skip ahead.
				toCopy := c.pa.size - len(c.msgBuf)
				if avail := len(buf) - i; avail < toCopy {
					toCopy = avail
				}
				if toCopy > 0 {
					start := len(c.msgBuf)
					c.msgBuf = c.msgBuf[:start+toCopy]
					copy(c.msgBuf[start:], buf[i:i+toCopy])
					i = (i + toCopy) - 1
				} else {
					c.msgBuf = append(c.msgBuf, b)
				}
				if len(c.msgBuf) >= c.pa.size {
					c.state = msgEndR
				}
			} else if i-c.as+1 >= c.pa.size {
				c.state = msgEndR
			}
		case msgEndR:
			if b != '\r' {
				goto parseErr
			}
			if c.msgBuf != nil {
				c.msgBuf = append(c.msgBuf, b)
			}
			c.state = msgEndN
		case msgEndN:
			if b != '\n' {
				goto parseErr
			}
			if c.msgBuf != nil {
				c.msgBuf = append(c.msgBuf, b)
			} else {
				c.msgBuf = buf[c.as : i+1]
			}
			if trace {
				c.traceMsg(c.msgBuf)
			}
			c.processInboundClientMsg(c.msgBuf)
			c.resetArgs()
			c.drop, c.as, c.state = 0, i+1, opStart
		case opS:
			if b != 'U' && b != 'u' {
				goto parseErr
			}
			c.state = opSU
		case opSU:
			if b != 'B' && b != 'b' {
				goto parseErr
			}
			c.state = opSUB
		case opSUB:
			if b != ' ' && b != '\t' {
				goto parseErr
			}
			c.state = opSUBSpc
		case opSUBSpc:
			if b == ' ' || b == '\t' {
				continue
			}
			c.state = subArg
			c.as = i
		case subArg:
			switch b {
			case '\r':
				c.drop = 1
			case '\n':
				arg := c.takeArg(buf, i)
				if err := c.checkControlLine(arg, mcl); err != nil {
					return err
				}
				if trace {
					c.traceIn(c.opName(), arg)
				}
				if err := c.parseSub(arg); err != nil {
					return err
				}
				c.drop, c.as, c.state = 0, i+1, opStart
			default:
				c.argByte(b)
			}
		case opU:
			if b != 'N' && b != 'n' {
				goto parseErr
			}
			c.state = opUN
		case opUN:
			if b != 'S' && b != 's' {
				goto parseErr
			}
			c.state = opUNS
		case opUNS:
			if b != 'U' && b != 'u' {
				goto parseErr
			}
			c.state = opUNSU
		case opUNSU:
			if b != 'B' && b != 'b' {
				goto parseErr
			}
			c.state = opUNSUB
		case opUNSUB:
			if b != ' ' && b != '\t' {
				goto parseErr
			}
			c.state = opUNSUBSpc
		case opUNSUBSpc:
			if b == ' ' || b == '\t' {
				continue
			}
			c.state = unsubArg
			c.as = i
		case unsubArg:
			switch b {
			case '\r':
				c.drop = 1
			case '\n':
				arg := c.takeArg(buf, i)
				if err := c.checkControlLine(arg, mcl); err != nil {
					return err
				}
				if trace {
					c.traceIn(c.opName(), arg)
				}
				if err := c.processUnsub(arg); err != nil {
					return err
				}
				c.drop, c.as, c.state = 0, i+1, opStart
			default:
				c.argByte(b)
			}
		case opPI:
			if b != 'N' && b != 'n' {
				goto parseErr
			}
			c.state = opPIN
		case opPIN:
			if b != 'G' && b != 'g' {
				goto parseErr
			}
			c.state = opPING
		case opPING:
			if b == '\n' {
				if trace {
					c.traceIn("PING", nil)
				}
				c.processPing()
				c.drop, c.state = 0, opStart
			}
		case opPO:
			if b != 'N' && b != 'n' {
				goto parseErr
			}
			c.state = opPON
		case opPON:
			if b != 'G' && b != 'g' {
				goto parseErr
			}
			c.state = opPONG
		case opPONG:
			if b == '\n' {
				if trace {
					c.traceIn("PONG", nil)
				}
				c.processPong()
				c.drop, c.state = 0, opStart
			}
		case opC:
			if b != 'O' && b != 'o' {
				goto parseErr
			}
			c.state = opCO
		case opCO:
			if b != 'N' && b != 'n' {
				goto parseErr
			}
			c.state = opCON
		case opCON:
			if b != 'N' && b != 'n' {
				goto parseErr
			}
			c.state = opCONN
		case opCONN:
			if b != 'E' && b != 'e' {
				goto parseErr
			}
			c.state = opCONNE
		case opCONNE:
			if b != 'C' && b != 'c' {
				goto parseErr
			}
			c.state = opCONNEC
		case opCONNEC:
			if b != 'T' && b != 't' {
				goto parseErr
			}
			c.state = opCONNECT
		case opCONNECT:
			if b == ' ' || b == '\t' {
				continue
			}
			c.state = connectArg
			c.as = i
		case connectArg:
			switch b {
			case '\r':
				c.drop = 1
			case '\n':
				arg := c.takeArg(buf, i)
				if err := c.checkControlLine(arg, mcl); err != nil {
					return err
				}
				if trace {
					c.traceIn("CONNECT", redactConnect(arg))
				}
				if err := c.processConnect(arg); err != nil {
					return err
				}
				c.drop, c.state = 0, opStart
				c.mu.Lock()
				awaitingAuth = c.flags.has(flagExpectConnect) && !c.flags.has(flagConnectReceived)
				c.mu.Unlock()
			default:
				c.argByte(b)
			}
		case opI:
			if b != 'N' && b != 'n' {
				goto parseErr
			}
			c.state = opIN
		case opIN:
			if b != 'F' && b != 'f' {
				goto parseErr
			}
			c.state = opINF
		case opINF:
			if b != 'O' && b != 'o' {
				goto parseErr
			}
			c.state = opINFO
		case opINFO:
			if b == ' ' || b == '\t' {
				continue
			}
			c.state = infoArg
			c.as = i
		case infoArg:
			switch b {
			case '\r':
				c.drop = 1
			case '\n':
				arg := c.takeArg(buf, i)
				if err := c.checkControlLine(arg, mcl); err != nil {
					return err
				}
				if err := c.processInfo(arg); err != nil {
					return err
				}
				c.drop, c.as, c.state = 0, i+1, opStart
			default:
				c.argByte(b)
			}
		case opPlus:
			if b != 'O' && b != 'o' {
				goto parseErr
			}
			c.state = opPlusO
		case opPlusO:
			if b != 'K' && b != 'k' {
				goto parseErr
			}
			c.state = opPlusOK
		case opPlusOK:
			if b == '\n' {
				c.drop, c.state = 0, opStart
			}
		case opMinus:
			if b != 'E' && b != 'e' {
				goto parseErr
			}
			c.state = opMinusE
		case opMinusE:
			if b != 'R' && b != 'r' {
				goto parseErr
			}
			c.state = opMinusER
		case opMinusER:
			if b != 'R' && b != 'r' {
				goto parseErr
			}
			c.state = opMinusERR
		case opMinusERR:
			if b != ' ' && b != '\t' {
				goto parseErr
			}
			c.state = opMinusERRSpc
		case opMinusERRSpc:
			if b == ' ' || b == '\t' {
				continue
			}
			c.state = minusErrArg
			c.as = i
		case minusErrArg:
			switch b {
			case '\r':
				c.drop = 1
			case '\n':
				arg := c.takeArg(buf, i)
				if err := c.checkControlLine(arg, mcl); err != nil {
					return err
				}
				c.processErr(arg)
				return errClosed
			default:
				c.argByte(b)
			}
		default:
			goto parseErr
		}
	}

	// A control line split across reads: keep what we have of it.
	switch c.state {
	case subArg, unsubArg, pubArg, hpubArg, minusErrArg, connectArg, infoArg:
		if c.argBuf == nil {
			c.argBuf = c.scratch[:0]
			c.argBuf = append(c.argBuf, buf[c.as:i-c.drop]...)
		}
		if err := c.checkControlLine(c.argBuf, mcl); err != nil {
			return err
		}
	}

	// A payload split across reads: copy the arguments (they point into buf)
	// and the part of the payload we have.
	if (c.state == msgPayload || c.state == msgEndR || c.state == msgEndN) && c.msgBuf == nil {
		if c.argBuf == nil {
			if err := c.clonePubArgs(); err != nil {
				goto parseErr
			}
		}
		if c.pa.size > cap(c.scratch)-len(c.argBuf) {
			rem := len(buf[c.as:])
			if rem > c.pa.size+2 {
				goto parseErr
			}
			if need := c.pa.size + 2; cap(c.splitBuf) >= need {
				c.msgBuf = c.splitBuf[:rem]
			} else {
				c.msgBuf = make([]byte, rem, need)
				if need <= maxRetainedSplitBuf {
					c.splitBuf = c.msgBuf[:0]
				}
			}
			copy(c.msgBuf, buf[c.as:])
		} else {
			c.msgBuf = c.scratch[len(c.argBuf):len(c.argBuf)]
			c.msgBuf = append(c.msgBuf, buf[c.as:]...)
		}
	}
	return nil

parseErr:
	c.sendErr(errTextUnknownOp)
	c.closeConnection(ParseError)
	return errClosed
}

// argByte records a byte of a control line. A '\r' is dropped only when the
// '\n' follows it at once; one inside the line stays, however the input was
// split across reads.
func (c *client) argByte(b byte) {
	if c.drop != 0 {
		c.drop = 0
		if c.argBuf != nil {
			c.argBuf = append(c.argBuf, '\r')
		}
	}
	if c.argBuf != nil {
		c.argBuf = append(c.argBuf, b)
	}
}

// takeArg returns the argument that ends at buf[i] ('\n') and resets argBuf.
func (c *client) takeArg(buf []byte, i int) []byte {
	if c.argBuf != nil {
		arg := c.argBuf
		c.argBuf = nil
		return arg
	}
	return buf[c.as : i-c.drop]
}

// checkControlLine enforces max_control_line; past it the client gets
// 'maximum control line exceeded' and is disconnected.
func (c *client) checkControlLine(arg []byte, mcl int) error {
	if len(arg) > mcl {
		c.sendErr(errTextMaxControlLine)
		c.closeConnection(MaxControlLineExceeded)
		return errClosed
	}
	return nil
}

// clonePubArgs copies the control line of a message whose payload is split
// across reads into scratch and parses it again there, so the arguments no
// longer point into the read buffer. Only the parsing is repeated: the checks
// (and their -ERRs) ran once already.
func (c *client) clonePubArgs() error {
	c.argBuf = c.scratch[:0]
	c.argBuf = append(c.argBuf, c.pa.arg...)
	if c.pa.hdr < 0 {
		return c.parsePubArgs(c.argBuf)
	}
	return c.parseHeaderPubArgs(c.argBuf)
}

// opName is the name of the op being parsed, for tracing.
func (c *client) opName() string {
	switch c.state {
	case pubArg:
		return "PUB"
	case hpubArg:
		return "HPUB"
	case subArg:
		return "SUB"
	case unsubArg:
		return "UNSUB"
	}
	return "?"
}

// splitArgs splits arg on spaces and tabs into dst without allocating (dst is
// a caller's stack array).
func splitArgs(dst [][]byte, arg []byte) [][]byte {
	start := -1
	for i, b := range arg {
		switch b {
		case ' ', '\t', '\r', '\n':
			if start >= 0 {
				dst = append(dst, arg[start:i])
				start = -1
			}
		default:
			if start < 0 {
				start = i
			}
		}
	}
	if start >= 0 {
		dst = append(dst, arg[start:])
	}
	return dst
}

// parseSize parses a non-negative decimal; -1 on anything else or overflow.
func parseSize(d []byte) int {
	const maxParseSizeLen = 9 // up to 999M
	if len(d) == 0 || len(d) > maxParseSizeLen {
		return -1
	}
	n := 0
	for _, dec := range d {
		if dec < '0' || dec > '9' {
			return -1
		}
		n = n*10 + int(dec-'0')
	}
	return n
}
