package testnet

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/xborder/xborder/node"
)

// proc is one long-lived child process (a replica's `xborder node run`),
// in a process group of its own so that stopping it reaches anything it
// started.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{} // closed when the process has been waited for
	err  error         // the result of Wait, once done is closed
}

// startProc starts bin with args, its stdout and stderr appended to
// logFile. The child gets SIGKILL if this process dies first (Linux).
func startProc(name, bin, logFile string, args ...string) (*proc, error) {
	lf, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: lf, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		lf.Close()
		close(p.done)
	}()
	return p, nil
}

// PID returns the child's process ID.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// exited reports whether the child has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL to the child's process group and waits for it.
func (p *proc) kill() {
	_ = syscall.Kill(-p.PID(), syscall.SIGKILL)
	<-p.done
}

// stop sends SIGTERM to the child's process group, and SIGKILL when it has
// not ended within grace. It reports whether SIGKILL was needed.
func (p *proc) stop(grace time.Duration) (killed bool) {
	if p.exited() {
		return false
	}
	_ = syscall.Kill(-p.PID(), syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return false
	case <-t.C:
	}
	p.kill()
	return true
}

// runVerb runs one short xborder verb and returns its stdout, and an error
// that holds its exit code and the last lines of its stderr when it fails.
func runVerb(ctx context.Context, bin string, timeout time.Duration, args ...string) (string, error) {
	out, code, stderr, err := runVerbCode(ctx, bin, timeout, args...)
	if err != nil {
		return out, err
	}
	if code != 0 {
		return out, &VerbError{Args: args, Code: code, Stderr: stderr}
	}
	return out, nil
}

// runVerbCode runs one short xborder verb and returns its stdout, exit
// code and stderr; the error is only for a verb that could not run.
func runVerbCode(ctx context.Context, bin string, timeout time.Duration, args ...string) (stdout string, code int, stderr string, err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return o.String(), 0, e.String(), nil
	case errors.As(err, &ee) && ctx.Err() == nil:
		return o.String(), ee.ExitCode(), e.String(), nil
	case ctx.Err() != nil:
		return o.String(), -1, e.String(), fmt.Errorf("xborder %s: %w", strings.Join(args[:min(2, len(args))], " "), ctx.Err())
	}
	return o.String(), -1, e.String(), fmt.Errorf("xborder %s: %w", strings.Join(args[:min(2, len(args))], " "), err)
}

// VerbError is a verb that exited with a non-zero code.
type VerbError struct {
	Args   []string
	Code   int
	Stderr string
}

func (e *VerbError) Error() string {
	verb := strings.Join(e.Args[:min(2, len(e.Args))], " ")
	msg := strings.TrimSpace(e.Stderr)
	if i := strings.LastIndex(msg, "xborder: error: "); i >= 0 {
		msg = msg[i:]
	} else if lines := strings.Split(msg, "\n"); len(lines) > 3 {
		msg = strings.Join(lines[len(lines)-3:], "\n")
	}
	return fmt.Sprintf("xborder %s: exit %d: %s", verb, e.Code, msg)
}

// boundPorts returns the raft, p2p and API ports a replica bound, from the
// DIR/listen.json it writes at start (node.Bound): its config.yaml says port
// 0, so the replica binds free ports itself and no port can be lost
// between choosing and binding. A replica whose start was cut short may
// have recorded fewer than three.
func boundPorts(dir string) ([]int, error) {
	b, err := node.ReadBound(dir)
	if err != nil {
		return nil, fmt.Errorf("read ports of %s: %w", dir, err)
	}
	var ports []int
	for _, a := range []string{b.Raft, b.P2P, b.API} {
		if a == "" {
			continue
		}
		i := strings.LastIndexAny(a, ":/")
		n, err := strconv.Atoi(a[i+1:])
		if err != nil || n <= 0 || n > 65535 {
			return nil, fmt.Errorf("read ports of %s: %q has no port", dir, a)
		}
		ports = append(ports, n)
	}
	return ports, nil
}

// ListeningPorts returns the TCP ports on which some socket of this
// machine's network namespace listens, from /proc/net/tcp and tcp6.
func ListeningPorts() (map[int]bool, error) {
	out := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		fh, err := os.Open(f)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read listening ports: %w", err)
		}
		err = parseProcNetTCP(fh, out)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("read listening ports of %s: %w", f, err)
		}
	}
	return out, nil
}

// parseProcNetTCP adds to out the local port of every listening socket of
// a /proc/net/tcp or tcp6 table. Lines it cannot read are skipped.
func parseProcNetTCP(r io.Reader, out map[int]bool) error {
	s := bufio.NewScanner(r)
	s.Scan() // header
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 4 || fields[3] != "0A" { // 0A: TCP_LISTEN
			continue
		}
		local := fields[1]
		i := strings.LastIndexByte(local, ':')
		if i < 0 {
			continue
		}
		port, err := strconv.ParseUint(local[i+1:], 16, 16)
		if err == nil {
			out[int(port)] = true
		}
	}
	return s.Err()
}

// stillListening returns those of ports on which something listens.
func stillListening(ports []int) ([]int, error) {
	l, err := ListeningPorts()
	if err != nil {
		return nil, err
	}
	var out []int
	for _, p := range ports {
		if l[p] {
			out = append(out, p)
		}
	}
	sort.Ints(out)
	return out, nil
}

// processAlive reports whether a process with pid exists and is not a
// zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) state ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
