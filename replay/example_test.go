package replay_test

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rampartgw/rampart/replay"
)

// Wiring a replay: read the inputs, judge every record under both
// configurations, print the report, exit with the gate's status. The lead's
// engine implements replay.Judge; here two functions stand in for it.
func Example() {
	input := strings.Join([]string{
		`{"id":"a","expect":"benign","method":"GET","path":"/search?q=shoes","headers":[["User-Agent","curl/8.5.0"]]}`,
		`{"id":"b","expect":"attack","method":"GET","path":"/search?q=%3Cscript%3E","headers":[["User-Agent","curl/8.5.0"]]}`,
		`{"id":"c","method":"GET"}`,
	}, "\n")
	in, err := replay.NewInput("example.jsonl", strings.NewReader(input), replay.DefaultReadConfig())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer in.Close()

	current := replay.JudgeFunc(func(context.Context, *replay.Record) (replay.Outcome, error) {
		return replay.Outcome{}, nil // allows everything
	})
	candidate := replay.JudgeFunc(func(_ context.Context, r *replay.Record) (replay.Outcome, error) {
		if strings.Contains(r.RawQuery(), "%3Cscript") {
			return replay.Outcome{Blocked: true, Status: 403, Detection: "payload", RuleID: "xss", Location: "query:q"}, nil
		}
		return replay.Outcome{}, nil
	})

	cfg := replay.DefaultRunConfig()
	cfg.Progress = replay.NewProgress(os.Stderr, in.Size(), in.BytesRead, nil) // nil: input too small
	rep, err := replay.Run(context.Background(), in.Records(), current, candidate, cfg)
	code, why := replay.ExitStatus(rep, err, replay.Gate{MaxNewBlocks: 0})

	t := rep.Totals
	fmt.Printf("requests %d, newly blocked %d, invalid %d (%s)\n", t.Requests, t.NewlyBlocked, t.Invalid, rep.Invalid.Examples[0].Where)
	fmt.Println(rep.Changes[0].Examples[0].RequestLine)
	fmt.Println(code, why)
	// Output:
	// requests 2, newly blocked 1, invalid 1 (example.jsonl:3)
	// GET /search?q=%3Cscript%3E HTTP/1.1
	// 1 gate failed: the candidate newly blocks 1 requests (max 0)
}
