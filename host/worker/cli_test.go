package worker_test

func buildCLI() {}
