package main

import (
	"bytes"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/alecthomas/kong"
)

// parsed is what a parse leaves for the run: the command, its values, the
// machine flags, what the parser printed, and its error or exit.
type parsed struct {
	command, values, flags, stdout, stderr, err string
	oneCommand                                  bool
}

func parseFor(args []string, fast bool) (p parsed) {
	var out, errb bytes.Buffer
	a := &app{stdout: &out, stderr: &errb}
	defer func() {
		if r := recover(); r != nil {
			code, ok := r.(parserExit)
			if !ok {
				panic(r)
			}
			p.err = fmt.Sprintf("exit %d", code)
		}
		p.stdout, p.stderr = out.String(), errb.String()
	}()
	ctx, flags, err := parse(args, a, fast)
	if err != nil {
		p.err = err.Error()
		return p
	}
	p.command = ctx.Command()
	p.values = fmt.Sprintf("%+v", ctx.Selected().Target.Interface())
	p.flags = fmt.Sprintf("%+v", *flags)
	p.oneCommand = len(ctx.Model.Children) == 1
	return p
}

// everyFlag is args naming cmd and setting each of its flags, the hidden
// ones included, read from the whole model: a flag added later is
// covered.
func everyFlag(t *testing.T, cmd string) []string {
	t.Helper()
	k, err := newParser(&cli{}, &app{stdout: &bytes.Buffer{}, stderr: &bytes.Buffer{}})
	if err != nil {
		t.Fatal(err)
	}
	args := []string{cmd}
	add := func(fs []*kong.Flag) {
		for _, f := range fs {
			switch {
			case f.Name == "help" || f.Name == "version":
			case f.IsBool():
				args = append(args, "--"+f.Name)
			case f.Enum != "":
				args = append(args, "--"+f.Name+"="+f.EnumSlice()[len(f.EnumSlice())-1])
			case f.Target.Type() == reflect.TypeOf(time.Duration(0)):
				args = append(args, "--"+f.Name+"=7s")
			default:
				args = append(args, "--"+f.Name+"=/x/"+f.Name)
			}
		}
	}
	add(k.Model.Flags)
	for _, n := range k.Model.Children {
		if n.Name == cmd {
			add(n.Flags)
		}
	}
	return args
}

// TestOneCommandModelsParseAsTheWhole: check, resolve and release parse
// against a model of the command alone (a switch's start is shorter);
// whatever a person types, the result, the output and the error are
// those of the whole CLI.
func TestOneCommandModelsParseAsTheWhole(t *testing.T) {
	valid := [][]string{
		everyFlag(t, "check"), everyFlag(t, "resolve"), everyFlag(t, "release"),
		{"resolve"}, {"release", "--all", "-v", "--dry-run"}, {"check", "--json"},
		{"resolve", "--manifest", "/home/alice/.config/portclaim/manifest.json", "--yes"},
	}
	for _, args := range valid {
		fast, whole := parseFor(args, true), parseFor(args, false)
		if !fast.oneCommand || whole.oneCommand {
			t.Errorf("%q: parsed against the one-command model: %v, the whole: %v", args, fast.oneCommand, !whole.oneCommand)
		}
		fast.oneCommand = whole.oneCommand
		if fast != whole || fast.err != "" {
			t.Errorf("%q:\none command: %+v\nwhole CLI:   %+v", args, fast, whole)
		}
	}
	// Through the whole CLI, because the one-command model fails or is
	// not tried: the same words as ever.
	odd := [][]string{
		{"resolve", "--version"}, {"resolve", "--help"}, {"check", "-h"}, {"release", "--bogus"},
		{"resolve", "--wait", "soon"}, {"check", "extra"}, {"release", "--manifest"},
		{"resolve", "--", "--help"}, {"check", "--user", "bob", "--help=x"},
	}
	for _, args := range odd {
		fast, whole := parseFor(args, true), parseFor(args, false)
		if fast != whole {
			t.Errorf("%q:\none command: %+v\nwhole CLI:   %+v", args, fast, whole)
		}
		if fast.oneCommand || whole.err == "" {
			t.Errorf("%q: want an error or an exit, through the whole CLI: %+v", args, fast)
		}
		t.Logf("%q: %s", args, whole.err)
	}
}
