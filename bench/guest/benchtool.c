/* benchtool: the in-guest micro-benchmark (our own code), built static at
 * bench time. "sys N FILE M": getppid N times, open+close FILE N times,
 * fork+exec+wait M times; prints ns per op. "noop": exits 0. "now": CLOCK_MONOTONIC in ns. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "noop") == 0)
		return 0;
	if (argc > 1 && strcmp(argv[1], "now") == 0) {
		printf("%.0f\n", now());
		return 0;
	}
	if (argc < 5 || strcmp(argv[1], "sys") != 0) {
		fprintf(stderr, "usage: benchtool sys N FILE M | noop\n");
		return 2;
	}
	long n = atol(argv[2]), m = atol(argv[4]);
	double t0 = now();
	for (long i = 0; i < n; i++)
		syscall(SYS_getppid);
	double t1 = now();
	for (long i = 0; i < n; i++)
		close(open(argv[3], O_RDONLY));
	double t2 = now();
	for (long i = 0; i < m; i++) {
		pid_t p = fork();
		if (p == 0) {
			execl(argv[0], argv[0], "noop", (char *)0);
			_exit(127);
		}
		waitpid(p, 0, 0);
	}
	double t3 = now();
	printf("BENCH getppid_ns=%.1f openclose_ns=%.1f forkexec_us=%.1f\n",
	       (t1 - t0) / n, (t2 - t1) / n, (t3 - t2) / m / 1000);
	return 0;
}
