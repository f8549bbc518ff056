package main

// ExitCode is one exit status and what it tells the person or script
// that ran portclaim.
type ExitCode struct {
	Code    int
	Meaning string
}

// ExitCodes is the one list of what each exit status means: main.go's
// constants name the codes, the man page's EXIT STATUS shows this list,
// and a test holds every exit* constant to having an entry here.
var ExitCodes = []ExitCode{
	{exitOK, "Nothing in the way, or everything done. resolve and release exit 0 with conflicts left, too, unless the manifest is strict."},
	{exitConflicts, "Conflicts left (check; resolve and release only when the manifest is strict). who: nothing holds the port."},
	{exitBadInput, "A bad manifest, argument or request; nothing was changed."},
	{exitEnv, "No usable environment (check): no socket table, no system bus; what could be seen is still printed. Also any other failure."},
}
