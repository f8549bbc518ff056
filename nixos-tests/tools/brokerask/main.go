// Command brokerask sends one request, read from its standard input, to
// portclaim's broker as is, and prints the answer: the end-to-end tests
// speak the protocol the way a hostile user would, without the CLI's
// choices in between.
//
//	echo '{"version":1,"op":"status"}' | brokerask /run/portclaim/broker.sock
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: brokerask SOCKET < request.json")
		os.Exit(2)
	}
	if err := ask(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "brokerask:", err)
		os.Exit(1)
	}
}

func ask(socket string) error {
	conn, err := net.DialTimeout("unix", socket, 5*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(2 * time.Minute))
	req, err := io.ReadAll(os.Stdin)
	if err != nil {
		return err
	}
	if _, err := conn.Write(req); err != nil {
		return err
	}
	// For a test that must know the request is in before it acts.
	fmt.Fprintln(os.Stderr, "brokerask: request sent")
	_, err = io.Copy(os.Stdout, conn)
	return err
}
