package saga

import (
	"fmt"
	"strings"
)

// Mermaid renders the saga as a Mermaid flowchart: the steps in order from
// start to completed, and for each step the dotted path that a failure
// there takes back through the compensations of the steps before it, newest
// first, to compensated. The output is stable, so it can be checked into a
// README.
func (d *Definition[S]) Mermaid() string {
	var b strings.Builder
	b.WriteString("flowchart LR\n")
	b.WriteString("    start([start])\n")
	for i, s := range d.steps {
		fmt.Fprintf(&b, "    s%d[%s]\n", i, mermaidLabel(s.Name))
	}
	b.WriteString("    completed([completed])\n")
	// The last step's compensation can never run: no later step can fail.
	undoable := d.steps[:len(d.steps)-1]
	for i, s := range undoable {
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

	// A failure at step i runs the compensations of steps i-1 … 0.
	next := "compensated" // where the chain of compensations below i leads
	undo := make([]string, len(d.steps))
	for i, s := range d.steps {
		undo[i] = next
		if s.Compensate != nil {
			next = fmt.Sprintf("c%d", i)
		}
	}
	for i := range d.steps {
		fmt.Fprintf(&b, "    s%d -. fails .-> %s\n", i, undo[i])
	}
	for i, s := range undoable {
		if s.Compensate != nil {
			fmt.Fprintf(&b, "    c%d -.-> %s\n", i, undo[i])
		}
	}
	return b.String()
}

// mermaidLabel quotes a label so that any step name renders as text.
func mermaidLabel(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, "#quot;") + `"`
}
