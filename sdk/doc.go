// Package sdk is what a Go block imports to run under blockhost: it reads
// the step's input, calls the block's handler, and reports the handler's
// output or error to the host through the host functions of ABI v1
// (docs/abi.md).
//
// A block is a main package whose main calls Run or RunJSON once:
//
//	func main() {
//		sdk.RunJSON(func(ctx context.Context, in Input) (Output, error) {
//			if in.Name == "" {
//				return Output{}, sdk.NewError(abi.CodeMissingRequiredField, abi.ClassPermanent, `"name" is required`)
//			}
//			return Output{Greeting: "hello, " + in.Name}, nil
//		})
//	}
//
// built with GOOS=wasip1 GOARCH=wasm (`blockhost build DIR -o block.wasm`).
//
// Importing the package is what makes a module an ABI v1 block: under
// wasip1 it exports the version marker blockhost_abi_v1 and imports the
// host functions from module "blockhost". Its guarantees:
//
//   - The handler runs once per step, with a context that carries the
//     step's deadline (its cause is ErrTimeout).
//   - A returned error ends the step as "error" with the code and class of
//     the first *Error in its chain, or execution_failed and permanent for
//     any other error. A panic does the same with execution_failed, then
//     goes on panicking.
//   - Host calls that fail return errors that match one of the sentinel
//     errors (ErrDenied, ErrLimit, …) with errors.Is; a result code the sdk
//     does not know matches ErrIO.
//   - Strings sent to the host (log messages, keys and values, error
//     messages) are valid UTF-8 and fit the host's framing.
//
// In a native build the host calls reach an in-process fake host while a
// test runs one step with package sdktest, so handlers are unit-tested with
// go test and the same Run, logging and error code paths. Outside such a
// step there is no host: Run panics and the other calls return
// ErrUnavailable.
package sdk
