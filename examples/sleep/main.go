// Command sleep is a plain WASI command that sleeps for ten seconds, which
// Go lowers to a WASI poll_oneoff on a clock, then prints "woke". Run with
// a shorter timeout, it shows the host interrupting a guest that is
// blocked in the host rather than computing.
package main

import (
	"fmt"
	"time"
)

func main() {
	time.Sleep(10 * time.Second)
	fmt.Println("woke")
}
