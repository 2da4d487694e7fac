package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"io"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sagaflow/sagaflow/saga"
)

// drawing is what the tests read back from an SVG: its nodes' boxes and
// labels, its edges, and whether it holds anything a strict page would
// refuse.
type drawing struct {
	title  string
	nodes  map[string]box // by data-node
	labels map[string]string
	edges  []edge
	styled bool // a <style> or <script> element, or a style attribute
}

type box struct{ x, y, w, h float64 }

type edge struct {
	kind           string
	x1, y1, x2, y2 float64
}

// parseSVG reads an SVG as sagaSVG draws it, failing the test if it is not
// well-formed XML.
func parseSVG(t *testing.T, svg []byte) drawing {
	t.Helper()
	d := drawing{nodes: map[string]box{}, labels: map[string]string{}}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var node string // the data-node of the <g> being read
	var inTitle, inText bool
	num := func(e xml.StartElement, name string) float64 {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				v, err := strconv.ParseFloat(a.Value, 64)
				require.NoError(t, err, "%s=%q", name, a.Value)
				return v
			}
		}
		t.Fatalf("<%s> without %s", e.Name.Local, name)
		return 0
	}
	attr := func(e xml.StartElement, name string) string {
		for _, a := range e.Attr {
			if a.Name.Local == name {
				return a.Value
			}
		}
		return ""
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		require.NoError(t, err, "well-formed XML")
		switch tok := tok.(type) {
		case xml.StartElement:
			if attr(tok, "style") != "" || tok.Name.Local == "style" || tok.Name.Local == "script" {
				d.styled = true
			}
			switch tok.Name.Local {
			case "title":
				inTitle = true
			case "g":
				node = attr(tok, "data-node")
			case "rect":
				d.nodes[node] = box{num(tok, "x"), num(tok, "y"), num(tok, "width"), num(tok, "height")}
			case "text":
				inText = node != ""
			case "line":
				kind, ok := strings.CutPrefix(attr(tok, "class"), "edge edge-")
				require.True(t, ok, "line class %q", attr(tok, "class"))
				d.edges = append(d.edges, edge{kind, num(tok, "x1"), num(tok, "y1"), num(tok, "x2"), num(tok, "y2")})
			}
		case xml.EndElement:
			switch tok.Name.Local {
			case "title":
				inTitle = false
			case "g":
				node = ""
			case "text":
				inText = false
			}
		case xml.CharData:
			if inTitle {
				d.title += string(tok)
			}
			if inText {
				d.labels[node] += string(tok)
			}
		}
	}
	return d
}

// at returns the node whose box the point lies on or next to (within
// 3px), "" if none.
func (d drawing) at(t *testing.T, x, y float64) string {
	t.Helper()
	var found []string
	for name, b := range d.nodes {
		dx := math.Max(0, math.Max(b.x-x, x-(b.x+b.w)))
		dy := math.Max(0, math.Max(b.y-y, y-(b.y+b.h)))
		if math.Hypot(dx, dy) <= 3 {
			found = append(found, name)
		}
	}
	require.LessOrEqual(t, len(found), 1, "point (%v, %v) is next to %v", x, y, found)
	if len(found) == 0 {
		return ""
	}
	return found[0]
}

// graph returns the edges between nodes as "kind from -> to", sorted, and
// how many lines join no nodes (the legend's).
func (d drawing) graph(t *testing.T) (edges []string, loose int) {
	t.Helper()
	for _, e := range d.edges {
		from, to := d.at(t, e.x1, e.y1), d.at(t, e.x2, e.y2)
		if from == "" && to == "" {
			loose++
			continue
		}
		require.NotEmpty(t, from, "%+v starts at no node", e)
		require.NotEmpty(t, to, "%+v ends at no node", e)
		edges = append(edges, e.kind+" "+from+" -> "+to)
	}
	slices.Sort(edges)
	return edges, loose
}

// mermaidEdge matches an edge of Definition.Mermaid.
var mermaidEdge = regexp.MustCompile(`^\s+(\w+) (-->|-\. fails \.->|-\. refused \.->|-\.->) (\w+)$`)

// mermaidGraph returns the edges of the definition's Mermaid drawing in
// the form graph returns: the SVG must draw the same graph.
func mermaidGraph[S any](t *testing.T, def *saga.Definition[S]) []string {
	t.Helper()
	steps := def.Steps()
	name := func(id string) string {
		if i, err := strconv.Atoi(id[1:]); err == nil && (id[0] == 's' || id[0] == 'c') {
			return map[byte]string{'s': "step:", 'c': "undo:"}[id[0]] + steps[i]
		}
		return id // start, completed, compensated
	}
	kinds := map[string]string{"-->": "next", "-. fails .->": "fails", "-. refused .->": "refused", "-.->": "undo"}
	var edges []string
	for _, line := range strings.Split(def.Mermaid(), "\n") {
		if m := mermaidEdge.FindStringSubmatch(line); m != nil {
			edges = append(edges, kinds[m[2]]+" "+name(m[1])+" -> "+name(m[3]))
		}
	}
	slices.Sort(edges)
	require.NotEmpty(t, edges)
	return edges
}

func TestSagaSVGOfOrders(t *testing.T) {
	t.Parallel()
	f := setup(t)
	def := f.sys.Definition()
	d := parseSVG(t, sagaSVG(def))

	assert.Equal(t, "saga order, version 1", d.title)
	assert.False(t, d.styled, "no <style>, <script> or style attribute: the page's CSP refuses them")
	assert.Equal(t, map[string]string{
		"start": "start", "completed": "completed", "compensated": "compensated",
		"step:validate": "validate", "step:payment": "payment", "step:inventory": "inventory", "step:shipping": "shipping",
		"undo:payment": "undo payment", "undo:inventory": "undo inventory", "undo:shipping": "undo shipping",
	}, d.labels)
	edges, legend := d.graph(t)
	assert.Equal(t, []string{
		"fails step:inventory -> undo:inventory",
		"fails step:payment -> undo:payment",
		"fails step:shipping -> undo:shipping",
		"fails step:validate -> compensated",
		"next start -> step:validate",
		"next step:inventory -> step:shipping",
		"next step:payment -> step:inventory",
		"next step:shipping -> completed",
		"next step:validate -> step:payment",
		"refused step:inventory -> undo:payment",
		"refused step:payment -> compensated",
		"refused step:shipping -> undo:inventory",
		"undo undo:inventory -> undo:payment",
		"undo undo:payment -> compensated",
		"undo undo:shipping -> undo:inventory",
	}, edges)
	assert.Equal(t, mermaidGraph(t, def), edges, "the same graph as Definition.Mermaid")
	assert.Equal(t, 4, legend, "one line per kind of edge in the legend")
}

func TestSagaSVGOfAnyDefinition(t *testing.T) {
	t.Parallel()
	noop := func(context.Context, *struct{}) error { return nil }
	for _, tc := range []struct {
		name  string
		steps []saga.Step[struct{}]
	}{
		{"one step", []saga.Step[struct{}]{{Name: "only", Action: noop}}},
		{"first step undoable", []saga.Step[struct{}]{
			{Name: "flight", Action: noop, Compensate: noop},
			{Name: `check <seats> & "fares"`, Action: noop},
			{Name: "hotel", Action: noop, Compensate: noop},
			{Name: "notify", Action: noop},
		}},
		{"long names", []saga.Step[struct{}]{
			{Name: strings.Repeat("reserve-", 8), Action: noop, Compensate: noop},
			{Name: "x", Action: noop, Compensate: noop},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			def, err := saga.NewDefinition("trip", tc.steps)
			require.NoError(t, err)
			d := parseSVG(t, sagaSVG(def))
			assert.False(t, d.styled)
			for _, s := range tc.steps {
				assert.Equal(t, s.Name, d.labels["step:"+s.Name], "escaped, and read back as written")
				if s.Compensate != nil {
					assert.Equal(t, "undo "+s.Name, d.labels["undo:"+s.Name])
				} else {
					assert.NotContains(t, d.labels, "undo:"+s.Name)
				}
			}
			for name, b := range d.nodes {
				assert.GreaterOrEqual(t, b.w, float64(len(d.labels[name]))*7, "%s's box fits its label", name)
			}
			edges, legend := d.graph(t)
			assert.Equal(t, mermaidGraph(t, def), edges)
			assert.Equal(t, 4, legend)
		})
	}
}
