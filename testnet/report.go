package testnet

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Report collects the demo's checks and prints them as they come: one
// heading per step, one PASS or FAIL line per check, and a final line
// "N passed, M failed". It is safe for concurrent use.
type Report struct {
	mu    sync.Mutex
	w     io.Writer
	start time.Time
	Steps []*Step `json:"steps"`
}

// Step is one step of the scenario.
type Step struct {
	Title   string   `json:"title"`
	Notes   []string `json:"notes,omitempty"`
	Checks  []Check  `json:"checks"`
	Seconds float64  `json:"seconds"`
	started time.Time
}

// Check is one check of a step.
type Check struct {
	Name   string `json:"name"`
	Pass   bool   `json:"pass"`
	Detail string `json:"detail,omitempty"`
}

// NewReport returns a report that prints to w (nil: nowhere).
func NewReport(w io.Writer) *Report {
	if w == nil {
		w = io.Discard
	}
	return &Report{w: w, start: time.Now()}
}

func (r *Report) endStep() {
	if n := len(r.Steps); n > 0 {
		s := r.Steps[n-1]
		s.Seconds = time.Since(s.started).Seconds()
	}
}

// Step starts a step with a title and a sentence that says what it shows.
func (r *Report) Step(title, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.endStep()
	r.Steps = append(r.Steps, &Step{Title: title, started: time.Now()})
	fmt.Fprintf(r.w, "\n%d. %s\n", len(r.Steps), title)
	if why != "" {
		fmt.Fprintf(r.w, "   %s\n", why)
	}
}

// Note prints a line of the current step that is not a check.
func (r *Report) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msg := fmt.Sprintf(format, args...)
	if n := len(r.Steps); n > 0 {
		r.Steps[n-1].Notes = append(r.Steps[n-1].Notes, msg)
	}
	fmt.Fprintf(r.w, "         %s\n", msg)
}

// Check records and prints one check of the current step.
func (r *Report) Check(pass bool, name string, detail string, args ...any) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.Steps) == 0 {
		r.Steps = append(r.Steps, &Step{Title: "checks", started: time.Now()})
	}
	d := fmt.Sprintf(detail, args...)
	s := r.Steps[len(r.Steps)-1]
	s.Checks = append(s.Checks, Check{Name: name, Pass: pass, Detail: d})
	word := "PASS"
	if !pass {
		word = "FAIL"
	}
	line := fmt.Sprintf("   %s  %s", word, name)
	if d != "" {
		line += ": " + d
	}
	fmt.Fprintln(r.w, strings.ReplaceAll(line, "\n", "\n         "))
	return pass
}

// Counts returns how many checks passed and failed.
func (r *Report) Counts() (passed, failed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.Steps {
		for _, c := range s.Checks {
			if c.Pass {
				passed++
			} else {
				failed++
			}
		}
	}
	return passed, failed
}

// Failed returns the names of the failed checks, each after its step.
func (r *Report) Failed() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, s := range r.Steps {
		for _, c := range s.Checks {
			if !c.Pass {
				out = append(out, s.Title+": "+c.Name)
			}
		}
	}
	return out
}

// Finish ends the last step and prints the final line.
func (r *Report) Finish() {
	r.mu.Lock()
	r.endStep()
	r.mu.Unlock()
	p, f := r.Counts()
	fmt.Fprintf(r.w, "\ntook %s\n%d passed, %d failed\n", time.Since(r.start).Round(time.Second), p, f)
}

// WriteJSON writes the report as one JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	p, f := r.Counts()
	r.mu.Lock()
	defer r.mu.Unlock()
	doc := struct {
		Steps   []*Step `json:"steps"`
		Passed  int     `json:"passed"`
		Failed  int     `json:"failed"`
		Seconds float64 `json:"seconds"`
	}{r.Steps, p, f, time.Since(r.start).Seconds()}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
