package conf

import "fmt"

// Error is a malformed config: a syntax error, a value of the wrong type or
// form, or (from Validate) an inconsistent combination of options. It never
// carries the value of a password, token or route URL.
type Error struct {
	File string // file the value was read from; "" for Validate errors
	Line int    // 1-based line in File; 0 when unknown
	// Col is the 1-based byte offset of the key in its line; 0 when the
	// error has no column. An error with a column is one of nats-server's
	// key errors (an unknown field), in nats-server's words and form.
	Col int
	Key string // dotted path of the key, e.g. "cluster.port" or "authorization.users[1].password"
	Msg string
}

func (e *Error) Error() string {
	if e.Col > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, natsColumn(e.Line, e.Col), e.Msg)
	}
	s := ""
	switch {
	case e.File != "" && e.Line > 0:
		s = fmt.Sprintf("%s:%d: ", e.File, e.Line)
	case e.File != "":
		s = e.File + ": "
	case e.Line > 0:
		s = fmt.Sprintf("line %d: ", e.Line)
	}
	if e.Key != "" {
		s += e.Key + ": "
	}
	return s + e.Msg
}

// Warning is something in a config the broker ignores, usually a key that
// nats-server knows and this broker does not support. Parsing goes on.
type Warning struct {
	File string
	Line int
	Key  string // dotted path of the key
	Msg  string // why: "unknown key", or what was assumed
}

func (w Warning) String() string {
	return (&Error{File: w.File, Line: w.Line, Key: w.Key, Msg: w.Msg}).Error()
}

// natsColumn is the column nats-server prints for a key at line, col: its
// lexer counts from the newline that ends the previous line, so columns are
// 1-based except on a file's first line, where they are 0-based. Printing the
// same number keeps our errors verbatim equal to nats-server's.
func natsColumn(line, col int) int {
	if line == 1 {
		return col - 1
	}
	return col
}
