package main

import (
	"fmt"
	"html"
	"strings"

	"github.com/sagaflow/sagaflow/saga"
)

// sagaSVG draws a saga definition as SVG, the same graph as its Mermaid
// method: on top the forward path from start through the steps to
// completed; below, right to left, the compensations of the steps that
// have one, ending at compensated. From each step dotted lines go down:
// "fails" (red) to the first undo that runs when the step gives up after
// a transient error (its own, since it may have taken effect), "refused"
// (grey) to the first one that runs when it is refused with a permanent
// error (it did nothing, so the undo starts below it).
//
// Every node is a <g> with a data-node attribute, "start", "step:<name>",
// "undo:<name>", "completed" or "compensated", so that a page can mark an
// order's progress with CSS classes. Colours are presentation attributes,
// which page CSS overrides, and the drawing holds no <style> or script,
// so it can be inlined under a strict Content-Security-Policy.
func sagaSVG[S any](d *saga.Definition[S]) []byte {
	steps := d.Steps()
	compensable := make([]bool, len(steps))
	labels := []string{"start", "completed", "compensated"}
	for i, name := range steps {
		step, _ := d.Step(name)
		compensable[i] = step.Compensate != nil
		labels = append(labels, name, "undo "+name)
	}

	// Columns: start, the steps, completed. Compensations sit under their
	// step, compensated under start.
	const (
		margin, gap, boxH = 16, 36, 38
		row0, row1        = 40, 150
		charW, padW       = 7.6, 28
	)
	boxW := 96
	for _, l := range labels {
		boxW = max(boxW, int(float64(len(l))*charW)+padW)
	}
	x := func(col int) int { return margin + col*(boxW+gap) }
	width := x(len(steps)+2) - gap + margin
	const height = row1 + boxH + 56

	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="saga-diagram" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-labelledby="saga-title">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<title id="saga-title">saga %s, version %d</title>`+"\n", esc(d.Name()), d.Version())
	b.WriteString(`<defs>` + "\n")
	for _, st := range edgeStyles {
		fmt.Fprintf(&b, `<marker id="saga-arrow-%s" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="%s"/></marker>`+"\n", st.name, st.color)
	}
	b.WriteString(`</defs>` + "\n")

	// Edges first, so that the nodes are drawn over their ends.
	edge := func(kind int, x1, y1, x2, y2 int) {
		st := edgeStyles[kind]
		dash := ""
		if st.dash != "" {
			dash = ` stroke-dasharray="` + st.dash + `"`
		}
		fmt.Fprintf(&b, `<line class="edge edge-%s" x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="1.6"%s marker-end="url(#saga-arrow-%s)"/>`+"\n",
			st.name, x1, y1, x2, y2, st.color, dash, st.name)
	}
	mid := func(col int) int { return x(col) + boxW/2 }
	for col := 0; col <= len(steps); col++ { // start → steps → completed
		edge(edgeNext, x(col)+boxW, row0+boxH/2, x(col+1)-2, row0+boxH/2)
	}
	// below[i] is the column of the first undo that runs once step i is
	// known not to have taken effect: the nearest compensable step before
	// it, or compensated (column 0).
	below := make([]int, len(steps))
	next := 0
	for i := range steps {
		below[i] = next
		if compensable[i] {
			next = i + 1
		}
	}
	for i := range steps {
		col := i + 1
		if compensable[i] {
			edge(edgeFails, mid(col), row0+boxH, mid(col), row1-2)
			edge(edgeRefused, mid(col)-boxW/4, row0+boxH, mid(below[i])+boxW/3, row1-2)
			edge(edgeUndo, x(col)-1, row1+boxH/2, x(below[i])+boxW+2, row1+boxH/2)
		} else {
			edge(edgeFails, mid(col)-boxW/4, row0+boxH, mid(below[i])+boxW/6, row1-2)
		}
	}

	node := func(id, label, kind string, col, y int) {
		fill, stroke, rx := "#ffffff", "#475569", 6
		switch kind {
		case "terminal":
			fill, stroke, rx = "#f1f5f9", "#64748b", boxH/2
		case "undo":
			fill, stroke = "#fffbeb", "#d97706"
		}
		fmt.Fprintf(&b, `<g class="node node-%s" data-node="%s"><rect x="%d" y="%d" width="%d" height="%d" rx="%d" fill="%s" stroke="%s" stroke-width="1.5"/>`,
			kind, esc(id), x(col), y, boxW, boxH, rx, fill, stroke)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" dominant-baseline="central" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="13" fill="#0f172a">%s</text></g>`+"\n",
			mid(col), y+boxH/2, esc(label))
	}
	node("start", "start", "terminal", 0, row0)
	for i, name := range steps {
		node("step:"+name, name, "step", i+1, row0)
		if compensable[i] {
			node("undo:"+name, "undo "+name, "undo", i+1, row1)
		}
	}
	node("completed", "completed", "terminal", len(steps)+1, row0)
	node("compensated", "compensated", "terminal", 0, row1)

	// The legend.
	ly := row1 + boxH + 34
	lx := margin
	for _, l := range []struct {
		kind int
		text string
	}{
		{edgeNext, "next step"},
		{edgeFails, "fails: its own undo runs too"},
		{edgeRefused, "refused: nothing to undo there"},
		{edgeUndo, "compensation"},
	} {
		edge(l.kind, lx, ly, lx+28, ly)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="central" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif" font-size="12" fill="#475569">%s</text>`+"\n", lx+36, ly, esc(l.text))
		lx += 36 + int(float64(len(l.text))*7) + 28
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// The kinds of edge and how each is drawn.
const (
	edgeNext = iota
	edgeFails
	edgeRefused
	edgeUndo
)

var edgeStyles = [...]struct{ name, color, dash string }{
	edgeNext:    {"next", "#475569", ""},
	edgeFails:   {"fails", "#dc2626", "5 4"},
	edgeRefused: {"refused", "#94a3b8", "2 4"},
	edgeUndo:    {"undo", "#d97706", "5 4"},
}

// esc escapes text for XML.
func esc(s string) string { return html.EscapeString(s) }
