//go:build bench

package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
)

var (
	white = color.RGBA{255, 255, 255, 255}
	black = color.RGBA{20, 20, 20, 255}
	grey  = color.RGBA{150, 150, 150, 255}
	light = color.RGBA{225, 225, 225, 255}
	green = color.RGBA{46, 139, 87, 255}
	red   = color.RGBA{200, 50, 40, 255}
)

// chart geometry, in pixels.
const (
	scale   = 2            // font scale: glyphs are 10x14
	glyphW  = 6 * scale    // advance per character
	lineH   = 7 * scale    // glyph height
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
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(white), image.Point{}, draw.Src)

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
	drawText(img, margin, y, "NATSFORGE BROKER VS NATS-SERVER "+strings.ToUpper(m.natsServer)+": TIMES BETTER, LOG SCALE", black)
	y += lineH + 8
	drawText(img, margin, y, fmt.Sprintf("RIGHT OF 1 = OURS BETTER.  %s, %d CPUS, LOAD %s", m.date.Format("2006-01-02 15:04 UTC"), m.nproc, m.loadStart), grey)
	y += lineH + 8
	drawText(img, margin, y, "GREEN: AIM MET   RED: AIM MISSED   GREY: NO AIM   (LATENCY, MEMORY, TIME: THEIRS/OURS)", grey)
	y += lineH + 14
	plotTop := y
	plotBottom := y + len(rs)*rowH
	for d := lo; d <= hi; d++ {
		x := xOf(math.Pow(10, d))
		c := light
		if d == 0 {
			c = black
		}
		fillRect(img, x, plotTop-4, 1+btoi(d == 0), plotBottom-plotTop+8, c)
		label := fmt.Sprintf("%g", math.Pow(10, d))
		drawText(img, x-len(label)*glyphW/2, plotBottom+10, label, grey)
	}
	for _, r := range rs {
		cy := y + (rowH-barH)/2
		drawText(img, margin+labelW-len(chartLabel(r))*glyphW, y+(rowH-lineH)/2, chartLabel(r), black)
		a := advantage(r)
		var text string
		switch {
		case math.IsNaN(a) && len(finite(r.ours)) == 0 && len(finite(r.theirs)) > 0:
			c := grey
			if r.aim != 0 {
				c = red
			}
			drawText(img, xOf(1)+8, y+(rowH-lineH)/2, "OURS FAILED EVERY RUN (SEE NOTES)", c)
		case math.IsNaN(a):
			drawText(img, xOf(1)+8, y+(rowH-lineH)/2, "NO DATA", grey)
		default:
			c := grey
			if ok, known := r.met(); known {
				c = red
				if ok {
					c = green
				}
			}
			x1, x2 := xOf(1), xOf(a)
			if math.IsInf(a, 1) {
				x2 = xOf(math.Pow(10, hi))
			}
			if x2 < x1 {
				x1, x2 = x2, x1
			}
			fillRect(img, x1, cy, max(x2-x1, 2), barH, c)
			text = fmt.Sprintf("%.2fX", a)
			if a >= 100 {
				text = fmt.Sprintf("%.0fX", a)
			}
			if math.IsInf(a, 1) {
				text = "INF"
			}
			drawText(img, x0+plotW+8, y+(rowH-lineH)/2, text, c)
		}
		y += rowH
	}

	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
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

func fillRect(img *image.RGBA, x, y, w, h int, c color.Color) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), image.NewUniform(c), image.Point{}, draw.Src)
}

// drawText draws s with its top left corner at (x, y); characters the font
// lacks are drawn as blanks.
func drawText(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, ch := range s {
		if g, ok := font5x7[ch]; ok {
			for row, bits := range g {
				for col := range 5 {
					if bits&(1<<(4-col)) != 0 {
						fillRect(img, x+col*scale, y+row*scale, scale, scale, c)
					}
				}
			}
		}
		x += glyphW
	}
}
