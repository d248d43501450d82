// Package plot draws the project's charts as PNGs with the standard library
// only: a bitmap font, rectangles and lines. The benchmark chart
// (test/bench, docs/benchmarks.png) and the observability chart
// (test/prometheus, docs/observability.png) use it.
package plot

import (
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"os"
	"path/filepath"
)

// Colours.
var (
	White  = color.RGBA{255, 255, 255, 255}
	Black  = color.RGBA{20, 20, 20, 255}
	Grey   = color.RGBA{150, 150, 150, 255}
	Light  = color.RGBA{225, 225, 225, 255}
	Green  = color.RGBA{46, 139, 87, 255}
	Red    = color.RGBA{200, 50, 40, 255}
	Blue   = color.RGBA{40, 90, 180, 255}
	Orange = color.RGBA{220, 130, 30, 255}
)

// Text geometry, in pixels.
const (
	Scale  = 2         // font scale: glyphs are 10x14
	GlyphW = 6 * Scale // advance per character
	LineH  = 7 * Scale // glyph height
)

// NewCanvas is a white image of w by h pixels.
func NewCanvas(w, h int) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.NewUniform(White), image.Point{}, draw.Src)
	return img
}

// FillRect paints the w by h rectangle at (x, y).
func FillRect(img *image.RGBA, x, y, w, h int, c color.Color) {
	draw.Draw(img, image.Rect(x, y, x+w, y+h), image.NewUniform(c), image.Point{}, draw.Src)
}

// DrawText draws s with its top left corner at (x, y); characters the font
// lacks are drawn as blanks.
func DrawText(img *image.RGBA, x, y int, s string, c color.Color) {
	for _, ch := range s {
		if g, ok := Font5x7[ch]; ok {
			for row, bits := range g {
				for col := range 5 {
					if bits&(1<<(4-col)) != 0 {
						FillRect(img, x+col*Scale, y+row*Scale, Scale, Scale, c)
					}
				}
			}
		}
		x += GlyphW
	}
}

// Line draws a line of the given thickness from (x0, y0) to (x1, y1).
func Line(img *image.RGBA, x0, y0, x1, y1, thick int, c color.Color) {
	dx, dy := x1-x0, y1-y0
	n := max(abs(dx), abs(dy), 1)
	for i := 0; i <= n; i++ {
		x := x0 + dx*i/n
		y := y0 + dy*i/n
		FillRect(img, x-thick/2, y-thick/2, thick, thick, c)
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// SavePNG writes img to path, making its directory.
func SavePNG(path string, img image.Image) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
