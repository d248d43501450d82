//go:build bench

package main

import (
	"fmt"
	"math"
	"strings"

	"github.com/natsforge/natsforge/test/plot"
)

// chart geometry, in pixels.
const (
	glyphW  = plot.GlyphW  // advance per character
	lineH   = plot.LineH   // glyph height
	barH    = 20           // bar thickness
	rowH    = 30           // one row
	margin  = 20           // around everything
	plotW   = 560          // the bar area
	headerH = 4*lineH + 40 // title lines and the axis labels
)

// advantage turns a row's ratio into "times better for us": the ratio for
// rows where higher is better, its inverse where lower is better, so that
// every bar reads the same way (right of 1 = ours better).
func advantage(r *row) float64 {
	q := r.ratio()
	if math.IsNaN(q) {
		return q
	}
	if !r.higher {
		if q == 0 {
			return math.Inf(1)
		}
		return 1 / q
	}
	return q
}

// writeChart draws one horizontal bar per compared row on a log scale, green
// where the aim is met, red where not, grey where there is no aim.
func writeChart(path string, rows []*row, m *meta) error {
	var rs []*row
	for _, r := range rows {
		if !r.oursOnly {
			rs = append(rs, r)
		}
	}
	labelW := 0
	for _, r := range rs {
		labelW = max(labelW, len(chartLabel(r))*glyphW)
	}
	valueW := 9 * glyphW
	w := margin + labelW + 16 + plotW + 8 + valueW + margin
	h := margin + headerH + len(rs)*rowH + lineH + 30 + margin
	img := plot.NewCanvas(w, h)

	lo, hi := -1.0, 2.0 // decades shown: 0.1 .. 100, widened to fit
	for _, r := range rs {
		a := advantage(r)
		if math.IsNaN(a) || math.IsInf(a, 0) || a <= 0 {
			continue
		}
		lo = math.Min(lo, math.Floor(math.Log10(a)))
		hi = math.Max(hi, math.Ceil(math.Log10(a)))
	}
	lo, hi = math.Max(lo, -2), math.Min(hi, 4)
	x0 := margin + labelW + 16
	xOf := func(v float64) int {
		l := math.Max(lo, math.Min(hi, math.Log10(v)))
		return x0 + int(math.Round((l-lo)/(hi-lo)*plotW))
	}

	y := margin
	plot.DrawText(img, margin, y, "NATSFORGE BROKER VS NATS-SERVER "+strings.ToUpper(m.natsServer)+": TIMES BETTER, LOG SCALE", plot.Black)
	y += lineH + 8
	plot.DrawText(img, margin, y, fmt.Sprintf("RIGHT OF 1 = OURS BETTER.  %s, %d CPUS, LOAD %s", m.date.Format("2006-01-02 15:04 UTC"), m.nproc, m.loadStart), plot.Grey)
	y += lineH + 8
	plot.DrawText(img, margin, y, "GREEN: AIM MET   RED: AIM MISSED   GREY: NO AIM   (LATENCY, MEMORY, TIME: THEIRS/OURS)", plot.Grey)
	y += lineH + 14
	plotTop := y
	plotBottom := y + len(rs)*rowH
	for d := lo; d <= hi; d++ {
		x := xOf(math.Pow(10, d))
		c := plot.Light
		if d == 0 {
			c = plot.Black
		}
		plot.FillRect(img, x, plotTop-4, 1+btoi(d == 0), plotBottom-plotTop+8, c)
		label := fmt.Sprintf("%g", math.Pow(10, d))
		plot.DrawText(img, x-len(label)*glyphW/2, plotBottom+10, label, plot.Grey)
	}
	for _, r := range rs {
		cy := y + (rowH-barH)/2
		plot.DrawText(img, margin+labelW-len(chartLabel(r))*glyphW, y+(rowH-lineH)/2, chartLabel(r), plot.Black)
		a := advantage(r)
		var text string
		switch {
		case math.IsNaN(a) && len(finite(r.ours)) == 0 && len(finite(r.theirs)) > 0:
			c := plot.Grey
			if r.aim != 0 {
				c = plot.Red
			}
			plot.DrawText(img, xOf(1)+8, y+(rowH-lineH)/2, "OURS FAILED EVERY RUN (SEE NOTES)", c)
		case math.IsNaN(a):
			plot.DrawText(img, xOf(1)+8, y+(rowH-lineH)/2, "NO DATA", plot.Grey)
		default:
			c := plot.Grey
			if ok, known := r.met(); known {
				c = plot.Red
				if ok {
					c = plot.Green
				}
			}
			x1, x2 := xOf(1), xOf(a)
			if math.IsInf(a, 1) {
				x2 = xOf(math.Pow(10, hi))
			}
			if x2 < x1 {
				x1, x2 = x2, x1
			}
			plot.FillRect(img, x1, cy, max(x2-x1, 2), barH, c)
			text = fmt.Sprintf("%.2fX", a)
			if a >= 100 {
				text = fmt.Sprintf("%.0fX", a)
			}
			if math.IsInf(a, 1) {
				text = "INF"
			}
			plot.DrawText(img, x0+plotW+8, y+(rowH-lineH)/2, text, c)
		}
		y += rowH
	}

	return plot.SavePNG(path, img)
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// chartLabel is the row's name in the font's alphabet.
func chartLabel(r *row) string {
	s := strings.ToUpper(r.name)
	s = strings.NewReplacer("≥", ">=", "≤", "<=", "µ", "U").Replace(s)
	return s
}
