package conf

import (
	"encoding/json"
	"strings"
)

// dump shows Options field by field, for failure messages.
func dump(o any) string {
	b, _ := json.MarshalIndent(o, "", "  ")
	return string(b)
}

// diff shows the lines of dump that differ.
func diff(got, want any) string {
	g, w := strings.Split(dump(got), "\n"), strings.Split(dump(want), "\n")
	var out []string
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			out = append(out, "line "+itoa(i+1)+":\n  got:  "+gl+"\n  want: "+wl)
			if len(out) > 5 {
				break
			}
		}
	}
	return strings.Join(out, "\n")
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
