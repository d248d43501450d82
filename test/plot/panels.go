package plot

import (
	"image"
	"image/color"
	"math"
	"strconv"
	"strings"
)

// Series is one line of a LinePanel: (x, y) points in x order.
type Series struct {
	Name   string
	Color  color.Color
	Points [][2]float64
}

// LinePanel draws series as lines in the w by h box at (x, y): a title, a y
// axis from 0 with "nice" grid lines labelled in unit, an x axis labelled
// xUnit, and a legend.
func LinePanel(img *image.RGBA, x, y, w, h int, title, unit, xUnit string, series []Series) {
	DrawText(img, x, y, strings.ToUpper(title), Black)
	top, left := y+2*LineH+16, x+8*GlyphW
	bottom, right := y+h-2*LineH-20, x+w-3*GlyphW
	xmin, xmax, ymax := math.Inf(1), math.Inf(-1), 0.0
	for _, s := range series {
		for _, p := range s.Points {
			xmin, xmax, ymax = math.Min(xmin, p[0]), math.Max(xmax, p[0]), math.Max(ymax, p[1])
		}
	}
	if math.IsInf(xmin, 0) {
		DrawText(img, left, top, "NO DATA", Grey)
		return
	}
	if xmax == xmin {
		xmax = xmin + 1
	}
	step := niceStep(ymax)
	ytop := math.Max(step, math.Ceil(ymax/step)*step)
	xOf := func(v float64) int { return left + int(math.Round((v-xmin)/(xmax-xmin)*float64(right-left))) }
	yOf := func(v float64) int { return bottom - int(math.Round(v/ytop*float64(bottom-top))) }
	for v := 0.0; v <= ytop+step/2; v += step {
		c := Light
		if v == 0 {
			c = Black
		}
		FillRect(img, left, yOf(v), right-left, 1, c)
		label := trim(v) + strings.ToUpper(unit)
		DrawText(img, left-len(label)*GlyphW-6, yOf(v)-LineH/2, label, Grey)
	}
	xstep := niceStep(xmax - xmin)
	for v := 0.0; v <= xmax-xmin+xstep/100; v += xstep {
		label := trim(v) + strings.ToUpper(xUnit)
		lx := xOf(xmin+v) - len(label)*GlyphW/2
		if v == 0 {
			lx = left // clear of the y axis' labels
		}
		FillRect(img, xOf(xmin+v), bottom, 1, 4, Black)
		DrawText(img, lx, bottom+8, label, Grey)
	}
	for _, s := range series {
		for i := 1; i < len(s.Points); i++ {
			a, b := s.Points[i-1], s.Points[i]
			Line(img, xOf(a[0]), yOf(a[1]), xOf(b[0]), yOf(b[1]), 2, s.Color)
		}
	}
	lx := left
	for _, s := range series {
		FillRect(img, lx, y+h-LineH, 3*GlyphW/2, LineH/2, s.Color)
		DrawText(img, lx+2*GlyphW, y+h-LineH-LineH/4, strings.ToUpper(s.Name), Black)
		lx += (len(s.Name) + 5) * GlyphW
	}
}

// BarPanel draws one vertical bar per value in the w by h box at (x, y),
// each labelled below and with its value above, in unit.
func BarPanel(img *image.RGBA, x, y, w, h int, title, unit string, labels []string, values []float64, c color.Color) {
	DrawText(img, x, y, strings.ToUpper(title), Black)
	top, left := y+2*LineH+16, x+8*GlyphW
	bottom, right := y+h-LineH-10, x+w
	if len(values) == 0 {
		DrawText(img, left, top, "NO DATA", Grey)
		return
	}
	ymax := 0.0
	for _, v := range values {
		ymax = math.Max(ymax, v)
	}
	step := niceStep(ymax)
	ytop := math.Max(step, math.Ceil(ymax/step)*step)
	yOf := func(v float64) int { return bottom - int(math.Round(v/ytop*float64(bottom-top))) }
	for v := 0.0; v <= ytop+step/2; v += step {
		lc := Light
		if v == 0 {
			lc = Black
		}
		FillRect(img, left, yOf(v), right-left, 1, lc)
		label := trim(v) + strings.ToUpper(unit)
		DrawText(img, left-len(label)*GlyphW-6, yOf(v)-LineH/2, label, Grey)
	}
	slot := (right - left) / len(values)
	bar := min(slot*2/3, 60)
	for i, v := range values {
		bx := left + i*slot + (slot-bar)/2
		FillRect(img, bx, yOf(v), bar, bottom-yOf(v), c)
		text := Value(v) + strings.ToUpper(unit)
		DrawText(img, bx+bar/2-len(text)*GlyphW/2, yOf(v)-LineH-4, text, Black)
		DrawText(img, bx+bar/2-len(labels[i])*GlyphW/2, bottom+6, strings.ToUpper(labels[i]), Grey)
	}
}

// niceStep is a grid step of 1, 2 or 5 times a power of ten giving about
// four lines up to max.
func niceStep(max float64) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / 4
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if raw <= m*p {
			return m * p
		}
	}
	return 10 * p
}

// trim is a grid line's label: v exactly, without trailing zeros. Grid
// values are sums of a 1-2-5 step, so rounding to nine decimals removes only
// the float error of the sum (0.30000000000000004), never a digit of the step
// (0.005 stays 0.005, where two decimals made it 0.01).
func trim(v float64) string {
	return strconv.FormatFloat(math.Round(v*1e9)/1e9, 'f', -1, 64)
}

// Value is a measured value as a chart prints it: three significant digits
// (0.161, 0.00123, 24.5), and whole numbers from 100 up.
func Value(v float64) string {
	if math.Abs(v) >= 100 {
		return strconv.FormatFloat(math.Round(v), 'f', -1, 64)
	}
	return strconv.FormatFloat(roundSig(v, 3), 'f', -1, 64)
}

// roundSig rounds v to n significant digits.
func roundSig(v float64, n int) float64 {
	if v == 0 || math.IsNaN(v) || math.IsInf(v, 0) {
		return v
	}
	p := math.Pow(10, float64(n)-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}
