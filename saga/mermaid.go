package saga

import (
	"fmt"
	"strings"
)

// Mermaid renders the saga as a Mermaid flowchart: the steps in order from
// start to completed, and for each step the dotted paths a failure there
// takes back through the compensations, newest first, to compensated. A
// step with a compensation has two: "fails" (its outcome is unknown, so
// its own compensation runs first) and "refused" (a permanent error: it
// did nothing, so the undo starts below it). The output is stable, so it
// can be checked into a README.
func (d *Definition[S]) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	b.WriteString("    start([start])\n")
	for i, s := range d.steps {
		fmt.Fprintf(&b, "    s%d[%s]\n", i, mermaidLabel(s.Name))
	}
	b.WriteString("    completed([completed])\n")
	for i, s := range d.steps {
		if s.Compensate != nil {
			fmt.Fprintf(&b, "    c%d[%s]\n", i, mermaidLabel("undo "+s.Name))
		}
	}
	b.WriteString("    compensated([compensated])\n")

	prev := "start"
	for i := range d.steps {
		fmt.Fprintf(&b, "    %s --> s%d\n", prev, i)
		prev = fmt.Sprintf("s%d", i)
	}
	fmt.Fprintf(&b, "    %s --> completed\n", prev)

	// below[i] is where the undo of the steps before i starts.
	next := "compensated"
	below := make([]string, len(d.steps))
	for i, s := range d.steps {
		below[i] = next
		if s.Compensate != nil {
			next = fmt.Sprintf("c%d", i)
		}
	}
	for i, s := range d.steps {
		if s.Compensate != nil {
			fmt.Fprintf(&b, "    s%d -. fails .-> c%d\n", i, i)
			fmt.Fprintf(&b, "    s%d -. refused .-> %s\n", i, below[i])
		} else {
			fmt.Fprintf(&b, "    s%d -. fails .-> %s\n", i, below[i])
		}
	}
	for i, s := range d.steps {
		if s.Compensate != nil {
			fmt.Fprintf(&b, "    c%d -.-> %s\n", i, below[i])
		}
	}
	return b.String()
}

// mermaidLabel quotes a label so that any step name renders as text.
func mermaidLabel(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"`
}
