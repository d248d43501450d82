package conf

// The syntax tree: what the text says, before any key means anything. The
// parser builds it (resolving includes and variables on the way); decode maps
// it onto Options.

type kind uint8

const (
	kindString kind = iota + 1
	kindInt
	kindFloat
	kindBool
	kindMap
	kindArray
)

func (k kind) String() string {
	switch k {
	case kindString:
		return "a string"
	case kindInt:
		return "a number"
	case kindFloat:
		return "a decimal number"
	case kindBool:
		return "a boolean"
	case kindMap:
		return "a map"
	case kindArray:
		return "an array"
	}
	return "nothing"
}

// node is one value. File and line are where it was written (for a value
// taken from a variable: where the variable was referenced).
type node struct {
	kind kind
	file string
	line int

	str  string // kindString: the value; kindInt, kindFloat: the literal text
	num  int64  // kindInt, suffix applied
	flt  float64
	bool bool

	entries []*entry // kindMap, in file order; a later key wins
	items   []*node  // kindArray
}

// entry is one `key = value` in a map.
type entry struct {
	key  string // as written
	file string
	line int
	col  int // 1-based byte offset of the key in its line
	val  *node
	// used is set when a variable reference read this entry: nats-server does
	// not complain about unknown keys that only define variables.
	used bool
}

// lookup returns the last entry named key (exactly, as nats-server).
func (n *node) lookup(key string) *entry {
	for i := len(n.entries) - 1; i >= 0; i-- {
		if n.entries[i].key == key {
			return n.entries[i]
		}
	}
	return nil
}

// effective returns the entries that count: for each key the last one, in
// the order of those last occurrences (nats-server keeps a Go map, so an
// earlier duplicate is simply overwritten).
func (n *node) effective() []*entry {
	last := make(map[string]int, len(n.entries))
	for i, e := range n.entries {
		last[e.key] = i
	}
	out := make([]*entry, 0, len(last))
	for i, e := range n.entries {
		if last[e.key] == i {
			out = append(out, e)
		}
	}
	return out
}
