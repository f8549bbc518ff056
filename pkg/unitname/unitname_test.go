package unitname

import "testing"

func TestValidate(t *testing.T) {
	good := []string{"ollama.service", "podman-local-ai-ollama.service", "qdrant.socket",
		"getty@tty1.service", "a.b.service", `dev-disk-by\x2duuid.device`}
	for _, n := range good {
		if err := Validate(n); err != nil {
			t.Errorf("Validate(%q) = %v, want nil", n, err)
		}
	}
	bad := []string{"", "ollama", "ollama.srv", "../etc/passwd.service", "a/b.service",
		"a b.service", "a\n.service", ".service", "getty@.service", "@x.service", "a@b@c.service",
		"ollama.service\x00"}
	for _, n := range bad {
		if err := Validate(n); err == nil {
			t.Errorf("Validate(%q) = nil, want an error", n)
		}
	}
}

func TestBaseType(t *testing.T) {
	if Base("ollama.service") != "ollama" || Type("ollama.service") != "service" {
		t.Fatal("Base/Type wrong for ollama.service")
	}
}
