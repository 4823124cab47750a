//go:build cgo && linux

// Linear memory for wasmtime instances (memory.go): ranges of address space
// of our own, each holding a module's memory image mapped private and
// copy-on-write from a sealed memory file, reused from step to step with
// only the pages a run changed restored. See memory.go for the contract.

#define _GNU_SOURCE
#include "shim.h"

#include <errno.h>
#include <fcntl.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

extern wasmtime_error_t *wasmtime_error_new(const char *);
extern bool wasmtime_memorytype_isshared(const void *ty);
extern bool wasmtime_memorytype_is64(const void *ty);

typedef struct wasmtime_linear_memory {
	void *env;
	uint8_t *(*get_memory)(void *env, size_t *byte_size, size_t *byte_capacity);
	wasmtime_error_t *(*grow_memory)(void *env, size_t new_size);
	void (*finalizer)(void *);
} wasmtime_linear_memory_t;

typedef struct wasmtime_memory_creator {
	void *env;
	wasmtime_error_t *(*new_memory)(void *env, const void *ty, size_t minimum, size_t maximum,
		size_t reserved_size_in_bytes, size_t guard_size_in_bytes, wasmtime_linear_memory_t *memory_ret);
	void (*finalizer)(void *);
} wasmtime_memory_creator_t;

extern void wasmtime_config_host_memory_creator_set(wasm_config_t *, wasmtime_memory_creator_t *);

// bh_page is the kernel's page size, which /proc/self/pagemap is indexed
// by: 4 KiB on x86-64, 4, 16 or 64 KiB on arm64.
static size_t bh_page;
#define HOST_PAGE bh_page
// A reservation when wasmtime names none: the whole 32-bit index space.
#define DEFAULT_RESERVE ((size_t)4 << 30)

// bh_range is a memory's address space: reserved bytes, the first usable
// of them readable and writable, the rest without access.
typedef struct bh_range {
	struct bh_range *next;
	// map is the mapping, map_len its length: a guard region, then the
	// memory at base, reserved bytes and wasmtime's guard region.
	uint8_t *map;
	size_t map_len;
	uint8_t *base;
	size_t reserved;
	size_t usable;
	// floor is the initial size of the memory that last used the range:
	// the reset leaves that much accessible, since the module's next memory
	// starts at the same size.
	size_t floor;
	// prefault_end is where prefaulting stops: 0 for a range that is not
	// prefaulted (bh_prefault).
	size_t prefault_end;
	// pre is the guard region's length before base, for matching a kept
	// range to a memory (base is placed within the mapping, bh_range_new).
	size_t pre;
} bh_range;

struct bh_image {
	pthread_mutex_t mu;
	// refs counts the module's reference and one per memory alive.
	int refs;
	int fd; // sealed memory file holding bytes, or -1
	// bytes are the image: the file's pages mapped read-only
	// (bytes_mapped), or a copy where there is no file.
	uint8_t *bytes;
	bool bytes_mapped;
	size_t len;
	bh_range *free;
	int nfree;
	bool closed;
	// scout is a range of the image in use (the first made while none
	// was), whose pages a run wrote tell a burst's ranges which image pages
	// to fault in writable (bh_learn); NULL when none. written has a bit
	// per image page seen written in a scout, set atomically and never
	// cleared; learned counts the passes that read a scout's page map.
	bh_range *scout;
	uint64_t *written;
	int learned;
};

// bh_mem is one instance's memory.
typedef struct bh_mem {
	bh_range *r;
	bh_image *img; // NULL for a memory not made for a module's image
	size_t size;
	size_t capacity;
} bh_mem;

static size_t bh_max_kept = 8;
// bh_kept counts free ranges kept by every image, which bh_max_kept_total
// bounds: each holds address space (4 GiB and guards) and up to
// bh_max_reset bytes resident.
static size_t bh_kept, bh_max_kept_total = 256;
static size_t bh_max_reset = 16 << 20;
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif
// BH_MAX_PREFAULT is how much of a range's memory past its image is
// faulted in, writable, as it first becomes accessible: about what a Go
// guest's runtime touches as it starts (1.6 MiB, of which it writes 0.5).
#define BH_MAX_PREFAULT ((size_t)2 << 20)

// BH_MAX_LEARN is how many times a burst's new ranges read a scout's page
// map (bh_learn) before the image's written pages are taken as known.
#define BH_MAX_LEARN 16

// bh_burst_at is how many memories of a module alive at once make the next
// range a burst's (memory.go sets it to the ranges a module keeps).
static size_t bh_burst_at = 8;

void bh_memory_tune(size_t max_kept, size_t burst_at) {
	bh_max_kept = max_kept;
	bh_burst_at = burst_at;
}

// The C heap wasmtime allocates from. Every instantiation allocates an
// instance (its vmctx: for a Go module of about 7,500 functions, a few
// hundred KiB of function references) and frees it when the store is
// deleted. With glibc's defaults, such a chunk is first mapped on its own
// and later, once the threshold has risen past it, served from the top of
// the heap, which free then gives back to the kernel (trimmed at twice
// that size): a steady stream of steps faults those pages in again every
// step, about 5% of a batch's CPU. bh_malloc_tune keeps chunks below 4 MiB
// in the heap and gives memory back only past 32 MiB of free top. An
// operator's own GLIBC_TUNABLES for malloc win.
static pthread_once_t bh_malloc_once = PTHREAD_ONCE_INIT;

static void bh_malloc_apply(void) {
#ifdef __GLIBC__
	const char *t = getenv("GLIBC_TUNABLES");
	if (t != NULL && strstr(t, "glibc.malloc.") != NULL) {
		return;
	}
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 32 << 20);
#endif
}

void bh_malloc_tune(void) { pthread_once(&bh_malloc_once, bh_malloc_apply); }

long long bh_malloc_mapped(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	return (long long)mallinfo2().hblkhd;
#else
	return -1;
#endif
}

long long bh_malloc_heap(void) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
	return (long long)mallinfo2().arena;
#else
	return -1;
#endif
}

static __thread bh_image *bh_current;


void bh_image_enter(bh_image *img) { bh_current = img; }

bool bh_image_leave(void) {
	bool pending = bh_current != NULL && bh_current->len > 0;
	bh_current = NULL;
	return pending;
}

static int bh_pagemap = -1;
static pthread_once_t bh_pagemap_once = PTHREAD_ONCE_INIT;
static void bh_open_pagemap(void) { bh_pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC); }

// bh_pagemap_ready opens the page map on first use; false when it cannot.
static bool bh_pagemap_ready(void) {
	pthread_once(&bh_pagemap_once, bh_open_pagemap);
	return bh_pagemap >= 0;
}

static pthread_once_t bh_page_once = PTHREAD_ONCE_INIT;
static void bh_init_page(void) { bh_page = (size_t)sysconf(_SC_PAGESIZE); }

size_t bh_page_size(void) {
	pthread_once(&bh_page_once, bh_init_page);
	return bh_page;
}

bh_image *bh_image_new(const uint8_t *bytes, size_t len) {
	bh_page_size();
	bh_image *img = calloc(1, sizeof(bh_image));
	if (img == NULL) {
		return NULL;
	}
	pthread_mutex_init(&img->mu, NULL);
	img->refs = 1;
	img->fd = -1;
	if (len == 0) {
		return img;
	}
	img->len = len;
	img->written = calloc((len / HOST_PAGE + 64) / 64, sizeof(uint64_t));
	if (img->written == NULL) {
		free(img);
		return NULL;
	}
	int fd = memfd_create("blockhost-wasmtime-image", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd >= 0) {
		size_t done = 0;
		while (done < len) {
			ssize_t n = write(fd, bytes + done, len - done);
			if (n <= 0) {
				break;
			}
			done += (size_t)n;
		}
		if (done == len && fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0) {
			// The bytes resets copy from are the sealed file's own pages,
			// mapped read-only: no second copy of the image in memory.
			void *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
			if (p != MAP_FAILED) {
				img->fd = fd;
				img->bytes = p;
				img->bytes_mapped = true;
				return img;
			}
		}
		close(fd);
	}
	// No memory file: every range holds a copy of the bytes.
	img->bytes = malloc(len);
	if (img->bytes == NULL) {
		free(img->written);
		free(img);
		return NULL;
	}
	memcpy(img->bytes, bytes, len);
	return img;
}

static void bh_range_unmap(bh_range *r) {
	munmap(r->map, r->map_len);
	free(r);
}

// bh_unmap_free unmaps a free list taken off its image.
static void bh_unmap_free(bh_range *r) {
	while (r != NULL) {
		bh_range *next = r->next;
		__atomic_sub_fetch(&bh_kept, 1, __ATOMIC_RELAXED);
		bh_range_unmap(r);
		r = next;
	}
}

static void bh_image_unref(bh_image *img) {
	pthread_mutex_lock(&img->mu);
	int refs = --img->refs;
	bh_range *free_list = NULL;
	if (refs == 0) {
		free_list = img->free;
		img->free = NULL;
	}
	pthread_mutex_unlock(&img->mu);
	if (refs != 0) {
		return;
	}
	bh_unmap_free(free_list);
	if (img->fd >= 0) {
		close(img->fd);
	}
	if (img->bytes_mapped) {
		munmap(img->bytes, img->len);
	} else {
		free(img->bytes);
	}
	free(img->written);
	pthread_mutex_destroy(&img->mu);
	free(img);
}

// bh_image_close drops the module's reference: its free ranges are unmapped
// now, those in use when their memories are freed.
void bh_image_close(bh_image *img) {
	pthread_mutex_lock(&img->mu);
	img->closed = true;
	bh_range *free_list = img->free;
	img->free = NULL;
	img->nfree = 0;
	pthread_mutex_unlock(&img->mu);
	bh_unmap_free(free_list);
	bh_image_unref(img);
}

// The page map's scan request (Linux 6.7, PAGEMAP_SCAN in linux/fs.h,
// declared here for older headers): the kernel walks the page table and
// returns runs of pages by category, rather than an entry a page that
// the caller then reads through.
struct bh_page_region {
	uint64_t start, end, categories;
};
struct bh_pm_scan_arg {
	uint64_t size, flags, start, end, walk_end, vec, vec_len, max_pages;
	uint64_t category_inverted, category_mask, category_anyof_mask, return_mask;
};
#define BH_PAGEMAP_SCAN _IOWR('f', 16, struct bh_pm_scan_arg)
#define BH_PAGE_IS_FILE (1 << 2)
#define BH_PAGE_IS_PRESENT (1 << 3)
#define BH_PAGE_IS_SWAPPED (1 << 4)

// bh_scan_refused is set once a first scan request is refused (an older
// kernel, or any other reason): resets read the page map from then on.
// bh_scan_forced_off, which only bh_scan_off writes, makes them read it
// too, for tests.
static bool bh_scan_refused;
static bool bh_scan_forced_off;

void bh_scan_off(bool off) { __atomic_store_n(&bh_scan_forced_off, off, __ATOMIC_RELAXED); }

// bh_each_scanned is bh_each_written by scan requests: the pages present
// and not the file's own, or swapped. It returns 1 when every page was
// passed to fn, 0 when fn or a later request failed, -1 when the first
// request failed (nothing was passed to fn then): a kernel without scan
// requests (ENOTTY, EINVAL), or one that refuses them for another reason
// (a seccomp filter's EPERM), is read an entry a page instead.
static int bh_each_scanned(uint8_t *base, size_t pages, bool (*fn)(void *ctx, size_t page), void *ctx) {
	struct bh_page_region regions[128];
	uint64_t start = (uintptr_t)base, end = (uintptr_t)base + pages * HOST_PAGE;
	while (start < end) {
		struct bh_pm_scan_arg arg = {
			.size = sizeof arg,
			.start = start,
			.end = end,
			.vec = (uintptr_t)regions,
			.vec_len = sizeof regions / sizeof regions[0],
			.category_inverted = BH_PAGE_IS_FILE,
			.category_mask = BH_PAGE_IS_FILE,
			.category_anyof_mask = BH_PAGE_IS_PRESENT | BH_PAGE_IS_SWAPPED,
			.return_mask = BH_PAGE_IS_PRESENT | BH_PAGE_IS_SWAPPED,
		};
		long n = ioctl(bh_pagemap, BH_PAGEMAP_SCAN, &arg);
		if (n < 0) {
			return start == (uintptr_t)base ? -1 : 0;
		}
		for (long k = 0; k < n; k++) {
			if (regions[k].start < start || regions[k].end > end || regions[k].start > regions[k].end) {
				return 0;
			}
			for (uint64_t a = regions[k].start; a < regions[k].end; a += HOST_PAGE) {
				if (!fn(ctx, (a - (uintptr_t)base) / HOST_PAGE)) {
					return 0;
				}
			}
		}
		// The walk stops early when the regions run out: it goes on from
		// where it stopped, which is past every page reported.
		if (arg.walk_end <= start || arg.walk_end > end) {
			return 0;
		}
		start = arg.walk_end;
	}
	return 1;
}

// bh_each_read is bh_each_written by reading the page map, an entry a
// page.
static bool bh_each_read(uint8_t *base, size_t pages, bool (*fn)(void *ctx, size_t page), void *ctx) {
	uint64_t buf[512];
	for (size_t first = 0; first < pages; first += 512) {
		size_t n = pages - first < 512 ? pages - first : 512;
		off_t off = (off_t)(((uintptr_t)base / HOST_PAGE + first) * 8);
		if (pread(bh_pagemap, buf, n * 8, off) != (ssize_t)(n * 8)) {
			return false;
		}
		for (size_t i = 0; i < n; i++) {
			uint64_t e = buf[i];
			if ((e & ((uint64_t)3 << 62)) == 0 || (e & ((uint64_t)1 << 61)) != 0) {
				continue;
			}
			if (!fn(ctx, first + i)) {
				return false;
			}
		}
	}
	return true;
}

// bh_each_written calls fn(ctx, i) for each of the pages pages from base
// that may differ from what the range was made with: present or swapped,
// and not the file's own page (a page still mapped from the image file was
// never written; a page never touched, or dropped, reads as the file or as
// zeros). It asks the kernel to scan the page table where it can
// (bh_each_scanned: about a quarter less time for a Go block's memory
// than reading the page map through), and otherwise reads the page map an
// entry per page. It returns false when it cannot, or when fn does.
static bool bh_each_written(uint8_t *base, size_t pages, bool (*fn)(void *ctx, size_t page), void *ctx) {
	if (!bh_pagemap_ready()) {
		return false;
	}
	if (!__atomic_load_n(&bh_scan_refused, __ATOMIC_RELAXED) && !__atomic_load_n(&bh_scan_forced_off, __ATOMIC_RELAXED)) {
		int done = bh_each_scanned(base, pages, fn, ctx);
		if (done >= 0) {
			return done == 1;
		}
		__atomic_store_n(&bh_scan_refused, true, __ATOMIC_RELAXED);
	}
	return bh_each_read(base, pages, fn, ctx);
}

// bh_written_pages writes to out the indexes of the pages bh_each_written
// finds from base, by scan requests (scan) or by reading the page map, up
// to max of them, and returns how many it found; -1 when it cannot, -2
// when scan requests are asked for and the kernel takes none. For tests.
typedef struct {
	size_t *out, max, n;
} bh_found;

static bool bh_note_found(void *ctx, size_t page) {
	bh_found *f = ctx;
	if (f->n < f->max) {
		f->out[f->n] = page;
	}
	f->n++;
	return true;
}

long bh_written_pages(uint8_t *base, size_t pages, bool scan, size_t *out, size_t max) {
	if (!bh_pagemap_ready()) {
		return -1;
	}
	bh_found f = {.out = out, .max = max};
	if (scan) {
		int done = bh_each_scanned(base, pages, bh_note_found, &f);
		return done == 1 ? (long)f.n : done == 0 ? -1 : -2;
	}
	return bh_each_read(base, pages, bh_note_found, &f) ? (long)f.n : -1;
}

// bh_learn adds to img->written the image pages its scout's run has
// written (present, and no longer the file's page), reading the scout's
// page map; img->mu is held, so the scout stays mapped. A burst's ranges
// learn this way because a burst has no range given back yet to learn
// from, while its first memories have long started.
static bool bh_note_written(void *ctx, size_t page) {
	bh_image *img = ctx;
	__atomic_or_fetch(&img->written[page / 64], (uint64_t)1 << (page % 64), __ATOMIC_RELAXED);
	return true;
}

static void bh_learn(bh_image *img) {
	if (img->scout == NULL || img->learned >= BH_MAX_LEARN) {
		return;
	}
	img->learned++;
	bh_each_written(img->scout->base, img->len / HOST_PAGE, bh_note_written, img);
}

// bh_populate_written faults in, writable, the image pages of r that a
// scout's run wrote (bh_learn): each is copied from the file now, rather
// than mapped read-only by the populate that follows and copied at the
// guest's first write, a fault that must also flush the page from every
// CPU the process runs on (about 50 us on a virtual machine). A page
// wrongly guessed costs a copy of its own bytes: what the guest sees is
// the same either way.
static void bh_populate_written(bh_range *r, bh_image *img) {
	size_t pages = img->len / HOST_PAGE;
	size_t run = 0;
	for (size_t k = 0; k <= pages; k++) {
		bool set = k < pages &&
			(__atomic_load_n(&img->written[k / 64], __ATOMIC_RELAXED) >> (k % 64) & 1) != 0;
		if (set) {
			run++;
			continue;
		}
		if (run > 0) {
			madvise(r->base + (k - run) * HOST_PAGE, run * HOST_PAGE, MADV_POPULATE_WRITE);
			run = 0;
		}
	}
}

// BH_HUGE is the size of a transparent huge page on x86-64 and of the
// 4 KiB-page arm64 kernels; elsewhere the advice below is only less
// useful.
#define BH_HUGE ((size_t)2 << 20)

// bh_range_new reserves reserve bytes, behind a guard region of pre
// bytes, and maps img's file at their start. A range for a burst is
// prefaulted (bh_prefault).
//
// What a memory grows into past its initial size, floor, is backed by
// transparent huge pages where the kernel offers them on request (Linux
// with transparent_hugepage "madvise" or "always"): the range is placed
// so that base + floor is 2 MiB-aligned, and what follows is advised
// MADV_HUGEPAGE. The reason is the reset. It makes that part inaccessible
// again (bh_range_reset), and the next memory's growth accessible, each a
// change of the page table entries of pages that stay resident; on a
// virtual machine that shadows the guest's page tables, each page so
// changed then costs about 1.5 us at its next touch, fault-free as far as
// the guest kernel can see. A Go command, whose runtime grows its memory
// by some 6 MiB and writes 2.5 MiB of it at each start, took 3.9 ms a
// step on wasmtime against 1.7 ms on wazero (whose memories check bounds
// in code, so their resets change no protection). With huge pages the
// same change is one entry per 2 MiB: 1.3-1.5 ms (docs/benchmarks.md).
// The cost is resident memory rounded up to 2 MiB past floor. The advice
// failing (an old kernel, THP off) leaves ordinary pages.
static bh_range *bh_range_new(bh_image *img, size_t pre, size_t reserve, bool burst, size_t floor) {
	bh_range *r = calloc(1, sizeof(bh_range));
	if (r == NULL) {
		return NULL;
	}
	if (pre > SIZE_MAX - reserve) {
		free(r);
		return NULL;
	}
	if (pre + reserve > SIZE_MAX - BH_HUGE || floor > reserve) {
		free(r);
		return NULL;
	}
	void *p = mmap(NULL, pre + reserve + BH_HUGE, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		free(r);
		return NULL;
	}
	r->map = p;
	r->map_len = pre + reserve + BH_HUGE;
	r->pre = pre;
	// base + floor is the first 2 MiB boundary at or past where it would
	// be with base right after the guard region: base moves less than
	// BH_HUGE, which the mapping has to spare.
	uintptr_t grown = ((uintptr_t)p + pre + floor + BH_HUGE - 1) & ~(uintptr_t)(BH_HUGE - 1);
	r->base = (uint8_t *)(grown - floor);
	if (reserve > floor) {
		madvise((uint8_t *)grown, reserve - floor, MADV_HUGEPAGE);
	}
	r->reserved = reserve;
	if (img != NULL && img->len > 0) {
		if (img->len > reserve) {
			bh_range_unmap(r);
			return NULL;
		}
		if (img->fd >= 0) {
			if (mmap(r->base, img->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, img->fd, 0) == MAP_FAILED) {
				bh_range_unmap(r);
				return NULL;
			}
		} else {
			if (mprotect(r->base, img->len, PROT_READ | PROT_WRITE) != 0) {
				bh_range_unmap(r);
				return NULL;
			}
			memcpy(r->base, img->bytes, img->len);
		}
		r->usable = img->len;
		if (burst) {
			// The pages a run is known to write are copied in first; the
			// rest of the image is mapped now, read-only until written, in
			// one call rather than a fault per 64 KiB the run reads. Failure
			// (an old kernel) leaves them to fault as usual.
			if (img->fd >= 0) {
				bh_populate_written(r, img);
			}
			madvise(r->base, img->len, MADV_POPULATE_READ);
		}
	}
	if (burst) {
		r->prefault_end = r->usable + BH_MAX_PREFAULT;
	}
	return r;
}

// bh_prefault faults in, writable, [from, to) of a burst's range, which
// has just become accessible, up to BH_MAX_PREFAULT past the image (a
// burst's range serves one memory and is never reset, so nothing in it
// was accessible before): growing further, the memory faults as usual, a page at a time. A
// fault taken one page at a time costs about 10 us on a virtual machine,
// where one call populating many pages costs a fraction of that per page.
//
// Only a range that will not be kept is prefaulted: a memory of a module
// with as many memories alive as it keeps ranges (bh_burst_at), one of a
// burst's. A kept range keeps its pages resident from run to run (the
// reset restores them in place), so it would gain nothing, and every page
// it holds costs a clear at each reset: prefaulted, a Go command step took
// twice as long (on a range reused step after step).
//
// Failure (an old kernel, memory short) leaves the pages to fault as
// usual.
static void bh_prefault(bh_range *r, size_t from, size_t to) {
	if (to > r->prefault_end) {
		to = r->prefault_end;
	}
	if (to > from) {
		madvise(r->base + from, to - from, MADV_POPULATE_WRITE);
	}
}

// bh_restore is a reset's: what it restores, and how much so far.
typedef struct bh_restore {
	bh_range *r;
	bh_image *img;
	size_t restored;
} bh_restore;

// bh_restore_page restores page i of a reset's range from its image: the
// image's bytes, zeros past them; false past bh_max_reset restored.
static bool bh_restore_page(void *ctx, size_t i) {
	bh_restore *st = ctx;
	if ((st->restored += HOST_PAGE) > bh_max_reset) {
		return false;
	}
	size_t at = i * HOST_PAGE;
	uint8_t *page = st->r->base + at;
	if (at < st->img->len) {
		size_t k = st->img->len - at < HOST_PAGE ? st->img->len - at : HOST_PAGE;
		memcpy(page, st->img->bytes + at, k);
		if (k < HOST_PAGE) {
			memset(page + k, 0, HOST_PAGE - k);
		}
	} else {
		memset(page, 0, HOST_PAGE);
	}
	return true;
}

// bh_range_reset restores every page of r that may differ from the image
// followed by zeros, and makes nothing past the initial size of the memory
// that used it accessible (nor past the image); false
// when it cannot (then r is unmapped instead). A page not present was
// never touched or was dropped, and reads as the file or zeros; a present
// page still mapped from the file was never written. Every other page is
// copied from the image or cleared.
static bool bh_range_reset(bh_range *r, bh_image *img) {
	if (img->fd < 0 && img->len > 0) {
		return false;
	}
	bh_restore st = {.r = r, .img = img};
	if (!bh_each_written(r->base, r->usable / HOST_PAGE, bh_restore_page, &st)) {
		return false;
	}
	size_t keep = r->floor > img->len ? r->floor : img->len;
	if (r->usable > keep) {
		// The pages past the memory's initial size hold zeros now; they
		// become accessible again only as the next memory grows over them.
		if (mprotect(r->base + keep, r->usable - keep, PROT_NONE) != 0) {
			return false;
		}
		r->usable = keep;
	}
	return true;
}

static uint8_t *bh_mem_get(void *env, size_t *size, size_t *capacity) {
	bh_mem *m = env;
	*size = m->size;
	*capacity = m->capacity;
	return m->r->base;
}

static wasmtime_error_t *bh_mem_grow(void *env, size_t size) {
	bh_mem *m = env;
	if (size > m->capacity) {
		return wasmtime_error_new("blockhost: memory grown past its reservation");
	}
	size_t need = (size + HOST_PAGE - 1) / HOST_PAGE * HOST_PAGE;
	if (need > m->r->usable) {
		if (mprotect(m->r->base + m->r->usable, need - m->r->usable, PROT_READ | PROT_WRITE) != 0) {
			return wasmtime_error_new("blockhost: cannot grow memory");
		}
		bh_prefault(m->r, m->r->usable, need);
		m->r->usable = need;
	}
	if (size > m->size) {
		m->size = size;
	}
	return NULL;
}

static void bh_mem_free(void *env) {
	bh_mem *m = env;
	bh_image *img = m->img;
	bh_range *r = m->r;
	free(m);
	if (img == NULL) {
		bh_range_unmap(r);
		return;
	}
	pthread_mutex_lock(&img->mu);
	if (img->scout == r) {
		img->scout = NULL; // before the range is reset or unmapped
	}
	bool keep = !img->closed && (size_t)img->nfree < bh_max_kept && r->prefault_end == 0 &&
		__atomic_load_n(&bh_kept, __ATOMIC_RELAXED) < bh_max_kept_total;
	pthread_mutex_unlock(&img->mu);
	if (keep && bh_range_reset(r, img)) {
		pthread_mutex_lock(&img->mu);
		if (!img->closed && (size_t)img->nfree < bh_max_kept) {
			r->next = img->free;
			img->free = r;
			img->nfree++;
			__atomic_add_fetch(&bh_kept, 1, __ATOMIC_RELAXED);
			r = NULL;
		}
		pthread_mutex_unlock(&img->mu);
	}
	if (r != NULL) {
		bh_range_unmap(r);
	}
	bh_image_unref(img);
}

static wasmtime_error_t *bh_new_memory(void *env, const void *ty, size_t minimum, size_t maximum,
	size_t reserved, size_t guard, wasmtime_linear_memory_t *ret) {
	(void)env;
	// The image is memory 0's: the first memory made that can hold it. A
	// memory wasmtime makes for itself first (a GC heap, of no minimum
	// size) leaves it for the next; bh_image_leave reports an image no
	// memory took.
	bh_image *img = bh_current;
	if (img != NULL && (img->len > minimum || wasmtime_memorytype_is64(ty))) {
		img = NULL;
	} else {
		bh_current = NULL;
	}
	if (wasmtime_memorytype_isshared(ty)) {
		return wasmtime_error_new("blockhost: shared memories are not supported");
	}
	size_t capacity = reserved != 0 ? reserved : DEFAULT_RESERVE;
	if (maximum < capacity && reserved == 0) {
		capacity = maximum;
	}
	if (minimum > capacity) {
		return wasmtime_error_new("blockhost: memory larger than its reservation");
	}
	if (guard > SIZE_MAX - capacity) {
		return wasmtime_error_new("blockhost: memory reservation too large");
	}
	size_t total = (capacity + guard + HOST_PAGE - 1) / HOST_PAGE * HOST_PAGE;
	// A guard region before the memory too, as wasmtime's own memories
	// have: no access the compiled code makes needs it.
	size_t pre = (guard + HOST_PAGE - 1) / HOST_PAGE * HOST_PAGE;
	bh_range *r = NULL;
	bool burst = false;
	if (img != NULL) {
		pthread_mutex_lock(&img->mu);
		// Every memory alive holds a reference, besides the module's.
		burst = (size_t)(img->refs - 1) >= bh_burst_at;
		for (bh_range **p = &img->free; *p != NULL; p = &(*p)->next) {
			if ((*p)->reserved == total && (*p)->pre == pre) {
				r = *p;
				*p = r->next;
				img->nfree--;
				__atomic_sub_fetch(&bh_kept, 1, __ATOMIC_RELAXED);
				break;
			}
		}
		img->refs++;
		if (burst && r == NULL) {
			bh_learn(img);
		}
		pthread_mutex_unlock(&img->mu);
	}
	if (r == NULL) {
		r = bh_range_new(img, pre, total, burst, (minimum + HOST_PAGE - 1) / HOST_PAGE * HOST_PAGE);
	}
	if (r == NULL) {
		if (img != NULL) {
			bh_image_unref(img);
		}
		return wasmtime_error_new("blockhost: cannot reserve memory");
	}
	r->next = NULL;
	bh_mem *m = calloc(1, sizeof(bh_mem));
	if (m == NULL) {
		bh_range_unmap(r);
		if (img != NULL) {
			bh_image_unref(img);
		}
		return wasmtime_error_new("blockhost: out of memory");
	}
	m->r = r;
	m->img = img;
	m->capacity = capacity;
	// A reused range is accessible up to the initial size of the memory
	// that used it last; nothing past this memory's own may stay so.
	wasmtime_error_t *err = NULL;
	size_t need = (minimum + HOST_PAGE - 1) / HOST_PAGE * HOST_PAGE;
	if (r->usable > need) {
		if (mprotect(r->base + need, r->usable - need, PROT_NONE) != 0) {
			err = wasmtime_error_new("blockhost: cannot protect memory");
			goto fail;
		}
		r->usable = need;
	}
	r->floor = need;
	if ((err = bh_mem_grow(m, minimum)) != NULL) {
		goto fail;
	}
	m->size = minimum;
	if (img != NULL) {
		// Only a memory handed out may scout: bh_mem_free, which every
		// such memory ends in, clears it.
		pthread_mutex_lock(&img->mu);
		if (img->scout == NULL) {
			img->scout = r;
		}
		pthread_mutex_unlock(&img->mu);
	}
	ret->env = m;
	ret->get_memory = bh_mem_get;
	ret->grow_memory = bh_mem_grow;
	ret->finalizer = bh_mem_free;
	return NULL;

fail:
	// The range is unmapped, not kept: nothing is known of its state.
	m->img = NULL;
	bh_mem_free(m);
	if (img != NULL) {
		bh_image_unref(img);
	}
	return err;
}

void bh_config_memory(wasm_config_t *cfg) {
	bh_page_size();
	wasmtime_memory_creator_t c = {.env = NULL, .new_memory = bh_new_memory, .finalizer = NULL};
	wasmtime_config_host_memory_creator_set(cfg, &c);
}
