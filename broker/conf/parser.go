package conf

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The parser reads nats-server's config syntax into a tree. It follows
// nats-server's conf/lex.go closely, state for state, so that whatever it
// accepts nats-server reads the same way; a few forms nats-server accepts are
// refused here instead (datetimes, `( ... )` blocks, a quote inside an unquoted
// string, numbers whose suffix overflows). Error messages never quote the
// text around the error: it may be a password.

const (
	maxNesting      = 64 // maps and arrays inside each other
	maxIncludeDepth = 10 // includes inside includes (also stops include cycles)
)

type parser struct {
	src  string
	pos  int
	line int
	// lineStart is the offset of the current line's first byte, for columns.
	lineStart int
	file      string // name used in errors
	dir       string // includes are relative to this

	scopes  []*node  // maps being built, outermost first: variable scopes
	keys    []string // keys being parsed, for error paths
	nesting int

	includeDepth int
	envRefs      map[string]bool // environment variables being expanded
}

func newParser(src, file string) *parser {
	return &parser{
		src:     src,
		line:    1,
		file:    file,
		dir:     filepath.Dir(file),
		envRefs: map[string]bool{},
	}
}

// parseTree parses a whole file into a map node.
func parseTree(src, file string) (*node, error) {
	return newParser(src, file).parseFile()
}

func (p *parser) errorf(format string, args ...any) *Error {
	return &Error{File: p.file, Line: p.line, Key: strings.Join(p.keys, "."), Msg: fmt.Sprintf(format, args...)}
}

const eof = -1

// peek returns the next rune without consuming it.
func (p *parser) peek() rune {
	if p.pos >= len(p.src) {
		return eof
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return r
}

func (p *parser) peekAt(off int) rune {
	if p.pos+off >= len(p.src) {
		return eof
	}
	r, _ := utf8.DecodeRuneInString(p.src[p.pos+off:])
	return r
}

func (p *parser) next() rune {
	if p.pos >= len(p.src) {
		return eof
	}
	r, w := utf8.DecodeRuneInString(p.src[p.pos:])
	p.pos += w
	if r == '\n' {
		p.line++
		p.lineStart = p.pos
	}
	return r
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' }
func isNL(r rune) bool    { return r == '\n' || r == '\r' }
func isSpace(r rune) bool { return r != eof && unicode.IsSpace(r) }
func isDigit(r rune) bool { return r >= '0' && r <= '9' }

// atComment reports whether a `#` or `//` comment starts here.
func (p *parser) atComment() bool {
	r := p.peek()
	return r == '#' || (r == '/' && p.peekAt(1) == '/')
}

// skipComment consumes up to (not including) the end of the line.
func (p *parser) skipComment() {
	for r := p.peek(); r != eof && !isNL(r); r = p.peek() {
		p.next()
	}
}

// skipSpaceAndComments skips whitespace, newlines and comments.
func (p *parser) skipSpaceAndComments() {
	for {
		switch r := p.peek(); {
		case isSpace(r):
			p.next()
		case p.atComment():
			p.skipComment()
		default:
			return
		}
	}
}

func (p *parser) parseFile() (*node, error) {
	root := &node{kind: kindMap, file: p.file, line: 1}
	// nats-server's lexer takes a NUL byte for the end of the input.
	if i := strings.IndexByte(p.src, 0); i >= 0 {
		return nil, &Error{File: p.file, Line: 1 + strings.Count(p.src[:i], "\n"), Msg: "NUL byte in the file"}
	}
	p.skipSpaceAndComments()
	// A file may be wrapped in braces, JSON style.
	if p.peek() == '{' {
		p.next()
		if err := p.parseBody(root, '}', true); err != nil {
			return nil, err
		}
		p.skipSpaceAndComments()
		if p.peek() != eof {
			return nil, p.errorf("unexpected text after the closing '}'")
		}
		return root, nil
	}
	if err := p.parseBody(root, eof, true); err != nil {
		return nil, err
	}
	return root, nil
}

// parseBody parses `key value` entries into m up to closer: eof at the top of
// a file, '}' in a map (the '{' is already consumed; the '}' is consumed too).
// At the top of a file (even one wrapped in braces) a value must start on the
// line of its separator, as in nats-server; in a map it may not.
func (p *parser) parseBody(m *node, closer rune, top bool) error {
	p.scopes = append(p.scopes, m)
	defer func() { p.scopes = p.scopes[:len(p.scopes)-1] }()
	for {
		p.skipSpaceAndComments()
		switch r := p.peek(); {
		case r == closer:
			p.next()
			return nil
		case r == eof:
			return p.errorf("unexpected end of file inside a map: missing '}'")
		case r == '=' || r == ':':
			return p.errorf("unexpected key separator '%c' where a key should be", r)
		case strings.ContainsRune("{}[],;/", r):
			return p.errorf("unexpected '%c' where a key should be", r)
		}
		if err := p.parseEntry(m, closer, top); err != nil {
			return err
		}
		if p.peek() == closer && closer != eof {
			p.next()
			return nil
		}
	}
}

// parseValueEnd consumes what may follow a value in a map: blanks, a comment,
// then a newline, ',' or ';' (consumed), or the closer (left for the caller).
func (p *parser) parseValueEnd(closer rune) error {
	for {
		r := p.peek()
		switch {
		case isBlank(r):
			p.next()
		case p.atComment():
			p.skipComment()
		case isNL(r) || r == ',' || r == ';':
			p.next()
			return nil
		case r == closer || r == eof && closer == eof:
			return nil
		case r == eof:
			return p.errorf("unexpected end of file inside a map: missing '}'")
		default:
			return p.errorf("expected a new line, ',' or '}' after the value")
		}
	}
}

// parseEntry parses one `key = value`, `key: value`, `key value` or
// `include "file"` into m, and what ends it.
func (p *parser) parseEntry(m *node, closer rune, top bool) error {
	line, col := p.line, p.pos-p.lineStart+1
	key, bare, err := p.parseKey()
	if err != nil {
		return err
	}
	if !bare {
		col++ // the key starts after its quote
	}
	if bare && strings.EqualFold(key, "include") && isSpace(p.peek()) {
		p.keys = append(p.keys, "include")
		defer func() { p.keys = p.keys[:len(p.keys)-1] }()
		if err := p.parseInclude(m); err != nil {
			return err
		}
		return p.parseValueEnd(closer)
	}
	p.keys = append(p.keys, key)
	defer func() { p.keys = p.keys[:len(p.keys)-1] }()

	// Between key and value: any whitespace (even new lines), an optional
	// separator, then blanks (at the top of a file) or any whitespace (in a map).
	for isSpace(p.peek()) {
		p.next()
	}
	if r := p.peek(); r == '=' || r == ':' {
		p.next()
		if top {
			for isBlank(p.peek()) {
				p.next()
			}
		} else {
			for isSpace(p.peek()) {
				p.next()
			}
		}
	}
	switch r := p.peek(); {
	case r == eof || isNL(r):
		return p.errorf("expected a value")
	case r == ',' || r == ';' || r == '}':
		return p.errorf("expected a value, got '%c'", r)
	}
	val, err := p.parseValue()
	if err != nil {
		return err
	}
	m.entries = append(m.entries, &entry{key: key, file: p.file, line: line, col: col, val: val})
	return p.parseValueEnd(closer)
}

// parseKey reads a key: quoted ("..." or '...', no escapes) or bare (up to
// whitespace, '=' or ':').
func (p *parser) parseKey() (key string, bare bool, err error) {
	if q := p.peek(); q == '"' || q == '\'' {
		p.next()
		start := p.pos
		for {
			r := p.next()
			if r == eof {
				return "", false, p.errorf("unexpected end of file in a quoted key")
			}
			if r == q {
				return p.src[start : p.pos-1], false, nil
			}
		}
	}
	start := p.pos
	for r := p.peek(); r != eof && !isSpace(r) && r != '=' && r != ':'; r = p.peek() {
		p.next()
	}
	if p.peek() == eof {
		return "", true, p.errorf("unexpected end of file after a key")
	}
	return p.src[start:p.pos], true, nil
}

// parseInclude reads the file name after `include` and merges that file's
// entries into m. The included file is parsed on its own: it does not see the
// including file's variables (as nats-server).
func (p *parser) parseInclude(m *node) error {
	for isBlank(p.peek()) {
		p.next()
	}
	line := p.line
	var name string
	switch r := p.peek(); {
	case r == '"' || r == '\'':
		p.next()
		start := p.pos
		for {
			c := p.next()
			if c == eof {
				return p.errorf("unexpected end of file in the include file name")
			}
			if c == r {
				name = p.src[start : p.pos-1]
				break
			}
		}
	case r == '[' || r == '{' || r == '(' || r == '-' || r == '\\' || isDigit(r) || isNL(r) || r == eof:
		return p.errorf("expected a file name")
	default:
		start := p.pos
		for c := p.peek(); c != eof && !isNL(c) && c != ';' && c != '}' && !isBlank(c) && c != '\''; c = p.peek() {
			p.next()
		}
		name = p.src[start:p.pos]
		if p.peek() == '\'' {
			return p.errorf("unexpected quote in the include file name")
		}
	}
	if p.includeDepth >= maxIncludeDepth {
		return &Error{File: p.file, Line: line, Key: "include", Msg: fmt.Sprintf("includes nested more than %d deep (an include cycle?)", maxIncludeDepth)}
	}
	// As nats-server: joined to the including file's directory, even when absolute.
	path := filepath.Join(p.dir, name)
	data, err := readConfigFile(path)
	if err != nil {
		return &Error{File: p.file, Line: line, Key: "include", Msg: fmt.Sprintf("cannot read %q: %v", name, err)}
	}
	sub := newParser(string(data), path)
	sub.includeDepth = p.includeDepth + 1
	sub.envRefs = p.envRefs
	tree, err := sub.parseFile()
	if err != nil {
		return err
	}
	m.entries = append(m.entries, tree.entries...)
	return nil
}

// maxFileSize bounds a config file (and each include).
const maxFileSize = 16 << 20

// readConfigFile reads a regular file of at most maxFileSize bytes (not a
// device or a pipe, which could hang or never end).
func readConfigFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file")
	}
	if fi.Size() > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	b, err := os.ReadFile(path)
	return b, unwrapPathError(err)
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// parseValue parses one value at the current position.
func (p *parser) parseValue() (*node, error) {
	line := p.line
	switch r := p.peek(); {
	case r == '[':
		return p.parseArray()
	case r == '{':
		p.next()
		if err := p.enter(); err != nil {
			return nil, err
		}
		defer p.leave()
		m := &node{kind: kindMap, file: p.file, line: line}
		if err := p.parseBody(m, '}', false); err != nil {
			return nil, err
		}
		return m, nil
	case r == '\'':
		p.next()
		start := p.pos
		for {
			c := p.next()
			if c == eof {
				return nil, &Error{File: p.file, Line: line, Key: strings.Join(p.keys, "."), Msg: "unterminated quoted string"}
			}
			if c == '\'' {
				return &node{kind: kindString, file: p.file, line: line, str: p.src[start : p.pos-1]}, nil
			}
		}
	case r == '"':
		p.next()
		return p.parseDoubleQuoted(line)
	case r == '-':
		p.next()
		if !isDigit(p.peek()) {
			return nil, p.errorf("expected a digit after '-'")
		}
		return p.parseNumber(p.pos-1, true)
	case isDigit(r):
		return p.parseNumber(p.pos, false)
	case unicode.IsDigit(r):
		return nil, p.errorf("invalid number: only ASCII digits")
	case r == '(':
		return nil, p.errorf("'(' blocks are not supported")
	case r == '.':
		return nil, p.errorf("a number must start with a digit")
	case r == eof || isNL(r):
		return nil, p.errorf("expected a value")
	}
	return p.parseUnquoted(p.pos, line)
}

func (p *parser) enter() error {
	p.nesting++
	if p.nesting > maxNesting {
		return p.errorf("maps and arrays nested more than %d deep", maxNesting)
	}
	return nil
}

func (p *parser) leave() { p.nesting-- }

func (p *parser) parseArray() (*node, error) {
	a := &node{kind: kindArray, file: p.file, line: p.line}
	p.next() // '['
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	for {
		p.skipSpaceAndComments()
		switch r := p.peek(); r {
		case ']':
			p.next()
			return a, nil
		case ',', '/':
			return nil, p.errorf("unexpected '%c' in an array", r)
		case eof:
			return nil, p.errorf("unexpected end of file in an array: missing ']'")
		}
		v, err := p.parseValue()
		if err != nil {
			return nil, err
		}
		a.items = append(a.items, v)
		// After a value: blanks, a comment, then ',' or a new line, or ']'.
	end:
		for {
			r := p.peek()
			switch {
			case isBlank(r):
				p.next()
			case p.atComment():
				p.skipComment()
			case r == ',' || isNL(r):
				p.next()
				break end
			case r == ']':
				p.next()
				return a, nil
			case r == eof:
				return nil, p.errorf("unexpected end of file in an array: missing ']'")
			default:
				return nil, p.errorf("expected ',' or ']' after an array value")
			}
		}
	}
}

// parseEscape consumes the character after a backslash and returns what it stands for.
func (p *parser) parseEscape() (string, error) {
	switch r := p.next(); r {
	case 't':
		return "\t", nil
	case 'n':
		return "\n", nil
	case 'r':
		return "\r", nil
	case '"':
		return "\"", nil
	case '\\':
		return "\\", nil
	case 'x':
		if p.pos+2 > len(p.src) {
			return "", p.errorf(`expected two hexadecimal digits after \x`)
		}
		b, err := strconv.ParseUint(p.src[p.pos:p.pos+2], 16, 8)
		if err != nil || strings.ContainsAny(p.src[p.pos:p.pos+2], "+-") {
			return "", p.errorf(`expected two hexadecimal digits after \x`)
		}
		p.pos += 2
		return string([]byte{byte(b)}), nil
	}
	return "", p.errorf(`invalid escape: only \t \n \r \" \\ and \xHH are allowed`)
}

func (p *parser) parseDoubleQuoted(line int) (*node, error) {
	var b strings.Builder
	start := p.pos
	for {
		r := p.peek()
		switch r {
		case eof:
			return nil, &Error{File: p.file, Line: line, Key: strings.Join(p.keys, "."), Msg: "unterminated quoted string"}
		case '"':
			b.WriteString(p.src[start:p.pos])
			p.next()
			return &node{kind: kindString, file: p.file, line: line, str: b.String()}, nil
		case '\\':
			b.WriteString(p.src[start:p.pos])
			p.next()
			s, err := p.parseEscape()
			if err != nil {
				return nil, err
			}
			b.WriteString(s)
			start = p.pos
		default:
			p.next()
		}
	}
}

// parseUnquoted reads an unquoted string from start (p.pos may be past start
// when a number turned out to be a string). It ends at whitespace, a new line,
// ',', ';', ']' or '}'. Unescaped, it may be a boolean or a $variable.
func (p *parser) parseUnquoted(start, line int) (*node, error) {
	var b strings.Builder
	escaped := false
	for {
		r := p.peek()
		switch {
		case r == eof || isNL(r) || isBlank(r) || r == ',' || r == ';' || r == ']' || r == '}':
			b.WriteString(p.src[start:p.pos])
			s := b.String()
			if escaped {
				return &node{kind: kindString, file: p.file, line: line, str: s}, nil
			}
			switch strings.ToLower(s) {
			case "true", "yes", "on":
				return &node{kind: kindBool, file: p.file, line: line, str: s, bool: true}, nil
			case "false", "no", "off":
				return &node{kind: kindBool, file: p.file, line: line, str: s}, nil
			}
			if strings.HasPrefix(s, "$") {
				return p.resolveVariable(s[1:], line)
			}
			return &node{kind: kindString, file: p.file, line: line, str: s}, nil
		case r == '\\':
			b.WriteString(p.src[start:p.pos])
			p.next()
			s, err := p.parseEscape()
			if err != nil {
				return nil, err
			}
			b.WriteString(s)
			start = p.pos
			escaped = true
		case r == '\'':
			return nil, p.errorf("unexpected quote in an unquoted string")
		default:
			p.next()
		}
	}
}

func isNumberSuffix(r rune) bool { return strings.ContainsRune("kKmMgGtTpPeE", r) }

// numberEnd reports whether r ends a number (nats-server's list: note that
// ']' is not in it, so `[1]` is an unterminated array, as in nats-server).
func numberEnd(r rune) bool {
	return r == eof || isNL(r) || isBlank(r) || r == '}' || r == ';' || r == ','
}

// parseNumber reads an integer (maybe with a size suffix), a float, an IP
// address (a string), or a string that starts with digits, like nats-server.
// p.pos is at the first digit; start is where the token began (at '-' if neg).
func (p *parser) parseNumber(start int, neg bool) (*node, error) {
	line := p.line
	for isDigit(p.peek()) {
		p.next()
	}
	r := p.peek()
	if unicode.IsDigit(r) { // nats-server takes it for a digit, then fails
		return nil, p.errorf("invalid number: only ASCII digits")
	}
	switch {
	case r == '-' && !neg:
		return nil, p.errorf("datetimes are not supported")
	case r == '.':
		p.next()
		if !isDigit(p.peek()) {
			return nil, p.errorf("expected a digit after '.'")
		}
		for isDigit(p.peek()) {
			p.next()
		}
		if unicode.IsDigit(p.peek()) {
			return nil, p.errorf("invalid number: only ASCII digits")
		}
		if p.peek() == '.' { // an IP address, maybe with a port
			for c := p.peek(); isDigit(c) || c == '.' || c == ':' || c == '-'; c = p.peek() {
				p.next()
			}
			return &node{kind: kindString, file: p.file, line: line, str: p.src[start:p.pos]}, nil
		}
		text := p.src[start:p.pos]
		f, err := strconv.ParseFloat(text, 64)
		if err != nil {
			return nil, p.errorf("number out of range")
		}
		return &node{kind: kindFloat, file: p.file, line: line, str: text, flt: f}, nil
	case isNumberSuffix(r):
		p.next()
		for c := p.peek(); c == 'b' || c == 'B' || c == 'i' || c == 'I'; c = p.peek() {
			p.next()
		}
		if !numberEnd(p.peek()) {
			if neg {
				return nil, p.errorf("invalid number")
			}
			return p.parseUnquoted(start, line)
		}
		return p.integer(start, line)
	case numberEnd(r) || neg:
		return p.integer(start, line)
	}
	// Not a number after all: as nats-server, the rune that showed it is
	// taken as it is (a backslash here escapes nothing), then a string goes on.
	p.next()
	return p.parseUnquoted(start, line)
}

var sizeSuffixes = map[string]int64{
	"":   1,
	"k":  1e3,
	"kb": 1 << 10, "ki": 1 << 10, "kib": 1 << 10,
	"m":  1e6,
	"mb": 1 << 20, "mi": 1 << 20, "mib": 1 << 20,
	"g":  1e9,
	"gb": 1 << 30, "gi": 1 << 30, "gib": 1 << 30,
	"t":  1e12,
	"tb": 1 << 40, "ti": 1 << 40, "tib": 1 << 40,
	"p":  1e15,
	"pb": 1 << 50, "pi": 1 << 50, "pib": 1 << 50,
	"e":  1e18,
	"eb": 1 << 60, "ei": 1 << 60, "eib": 1 << 60,
}

// integer converts src[start:p.pos]: digits and an optional size suffix.
func (p *parser) integer(start, line int) (*node, error) {
	text := p.src[start:p.pos]
	digits := strings.TrimRight(text, "kKmMgGtTpPeEbBiI")
	mult, ok := sizeSuffixes[strings.ToLower(text[len(digits):])]
	if !ok {
		return nil, p.errorf("invalid size suffix")
	}
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || (n != 0 && (n > math.MaxInt64/mult || n < math.MinInt64/mult)) {
		return nil, p.errorf("number out of range")
	}
	return &node{kind: kindInt, file: p.file, line: line, str: text, num: n * mult}, nil
}

// resolveVariable looks name up in the enclosing maps (innermost first, keys
// defined before this point), then in the environment. As nats-server, an
// unquoted $2a$... is a bcrypt hash, not a variable.
func (p *parser) resolveVariable(name string, line int) (*node, error) {
	if strings.HasPrefix(name, "2a$") {
		return &node{kind: kindString, file: p.file, line: line, str: "$" + name}, nil
	}
	if len(name) > 3 && name[0] == '2' && name[2] == '$' {
		return nil, &Error{File: p.file, Line: line, Key: strings.Join(p.keys, "."), Msg: "an unquoted bcrypt hash is read as a variable: put it in quotes"}
	}
	for i := len(p.scopes) - 1; i >= 0; i-- {
		if e := p.scopes[i].lookup(name); e != nil {
			e.used = true
			return p.at(e.val, line), nil
		}
	}
	if p.envRefs[name] {
		return nil, &Error{File: p.file, Line: line, Key: strings.Join(p.keys, "."), Msg: fmt.Sprintf("variable $%s refers to itself", name)}
	}
	v, ok := os.LookupEnv(name)
	if !ok {
		return nil, &Error{File: p.file, Line: line, Key: strings.Join(p.keys, "."), Msg: fmt.Sprintf("variable $%s is not defined", name)}
	}
	p.envRefs[name] = true
	defer delete(p.envRefs, name)
	sub := newParser("pk="+v, p.file)
	sub.envRefs = p.envRefs
	tree, err := sub.parseFile()
	if err != nil || len(tree.entries) != 1 {
		return nil, &Error{File: p.file, Line: line, Key: strings.Join(p.keys, "."), Msg: fmt.Sprintf("environment variable $%s does not hold a valid value", name)}
	}
	return p.at(tree.entries[0].val, line), nil
}

// at returns a shallow copy of n placed at the current file and line.
func (p *parser) at(n *node, line int) *node {
	c := *n
	c.file, c.line = p.file, line
	return &c
}
