package main

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Chart geometry, in pixels.
const (
	chartWidth  = 960
	labelWidth  = 300
	rowHeight   = 26
	chartTop    = 56
	chartBottom = 40
	chartRight  = 70
	// The axis spans 1/32× … 32× on a log2 scale: ratios beyond are clipped.
	axisMinLog2 = -5
	axisMaxLog2 = 5
)

var (
	colBackground = color.RGBA{255, 255, 255, 255}
	colText       = color.RGBA{30, 30, 30, 255}
	colGrid       = color.RGBA{225, 225, 225, 255}
	colOne        = color.RGBA{90, 90, 90, 255}
	colMet        = color.RGBA{46, 139, 87, 255}  // target met
	colMissed     = color.RGBA{205, 60, 50, 255}  // target missed
	colNoTarget   = color.RGBA{70, 110, 180, 255} // no target for this ratio
	colTarget     = color.RGBA{0, 0, 0, 255}
)

// chartBar is one bar: charter's wall time over a peer's in one case.
type chartBar struct {
	label  string
	ratio  float64
	target float64 // 0: none
}

// bars turns ratios into bars, with the wall-time targets.
func bars(rs []Ratio, ts []Target) []chartBar {
	var out []chartBar
	for _, r := range rs {
		if r.Wall <= 0 {
			continue
		}
		b := chartBar{label: fmt.Sprintf("%s %s vs %s", r.Scenario, r.Case, r.Peer), ratio: r.Wall}
		for _, t := range ts {
			if t.Scenario == r.Scenario && t.Case == r.Case && t.Peer == r.Peer {
				b.target = t.Limit
			}
		}
		out = append(out, b)
	}
	return out
}

// ratioChart draws the charter/peer wall-time ratios as horizontal bars on
// a log scale centred on 1×, with each target marked, as a PNG.
func ratioChart(rs []Ratio, ts []Target) ([]byte, error) {
	bs := bars(rs, ts)
	height := chartTop + max(1, len(bs))*rowHeight + chartBottom
	img := image.NewRGBA(image.Rect(0, 0, chartWidth, height))
	draw.Draw(img, img.Bounds(), &image.Uniform{colBackground}, image.Point{}, draw.Src)

	plotL, plotR := labelWidth, chartWidth-chartRight
	x := func(ratio float64) int {
		l := math.Log2(ratio)
		l = math.Max(axisMinLog2, math.Min(axisMaxLog2, l))
		return plotL + int(float64(plotR-plotL)*(l-axisMinLog2)/(axisMaxLog2-axisMinLog2))
	}
	text(img, 10, 20, "charter wall time / peer wall time (log scale: left of 1x, charter is faster)", colText)
	text(img, 10, 38, "green: target met   red: target missed   blue: no target   |: target", colText)

	// Grid and tick labels.
	bottom := chartTop + len(bs)*rowHeight
	for l := axisMinLog2; l <= axisMaxLog2; l++ {
		r := math.Exp2(float64(l))
		gx := x(r)
		c := colGrid
		if l == 0 {
			c = colOne
		}
		vline(img, gx, chartTop-4, bottom, c)
		label := fmt.Sprintf("%gx", r)
		if l < 0 {
			label = fmt.Sprintf("1/%gx", 1/r)
		}
		text(img, gx-len(label)*7/2, bottom+16, label, colText)
	}
	if len(bs) == 0 {
		text(img, plotL+10, chartTop+18, "no ratios: no case ran for charter and a peer", colText)
	}
	for i, b := range bs {
		top := chartTop + i*rowHeight
		mid := top + rowHeight/2
		text(img, 10, mid+4, truncate(b.label, 40), colText)
		c := colNoTarget
		switch {
		case b.target > 0 && b.ratio <= b.target:
			c = colMet
		case b.target > 0:
			c = colMissed
		}
		x0, x1 := x(1), x(b.ratio)
		if x1 < x0 {
			x0, x1 = x1, x0
		}
		fill(img, image.Rect(x0, top+5, max(x1, x0+2), top+rowHeight-5), c)
		if b.target > 0 {
			tx := x(b.target)
			fill(img, image.Rect(tx-1, top+2, tx+2, top+rowHeight-2), colTarget)
		}
		// The value goes right of the bar, of 1x and of the target mark.
		val := strings.ReplaceAll(fmtRatio(b.ratio), "×", "x")
		vx := max(x(b.ratio), x(1)) + 6
		if b.target > 0 {
			vx = max(vx, x(b.target)+6)
		}
		text(img, vx, mid+4, val, colText)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("encode chart: %w", err)
	}
	return buf.Bytes(), nil
}

func text(img draw.Image, x, y int, s string, c color.Color) {
	d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

func vline(img draw.Image, x, y0, y1 int, c color.Color) {
	fill(img, image.Rect(x, y0, x+1, y1), c)
}

func fill(img draw.Image, r image.Rectangle, c color.Color) {
	draw.Draw(img, r, &image.Uniform{c}, image.Point{}, draw.Src)
}
