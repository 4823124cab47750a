// shim.h declares the part of the wasmtime C API (v39) that wasmtime-go
// does not wrap and this engine needs, and the engine's own C helpers
// (shim.c). The wasmtime functions are resolved at link time from the
// libwasmtime.a that wasmtime-go links; their prototypes here follow
// wasmtime's include/wasi.h, wasmtime/store.h and wasmtime/config.h.

#ifndef BLOCKHOST_WASMTIME_SHIM_H
#define BLOCKHOST_WASMTIME_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

// Opaque wasmtime types.
typedef struct wasm_config_t wasm_config_t;
typedef struct wasmtime_store wasmtime_store_t;
typedef struct wasmtime_context wasmtime_context_t;
typedef struct wasmtime_error wasmtime_error_t;
typedef struct wasi_config_t wasi_config_t;

typedef struct bh_byte_vec {
	size_t size;
	uint8_t *data;
} bh_byte_vec;

// bh_run is one run's shared state between Go and C. Go allocates it with
// bh_run_new and frees it with bh_run_free once the run's store is gone.
typedef struct bh_run {
	// stop is set (atomically) by Go when the run's context ends.
	int stop;
	// interrupted is set by the epoch callback when it ended the run.
	int interrupted;
} bh_run;

bh_run *bh_run_new(void);
void bh_run_free(bh_run *r);
void bh_run_stop(bh_run *r);
int bh_run_interrupted(bh_run *r);

// bh_pool sizes wasmtime's pooling instance allocator (wasmtime.go).
typedef struct bh_pool {
	uint32_t instances, memories, tables;
	uint32_t memories_per_module, tables_per_module;
	uint32_t warm_slots;
	size_t max_memory, table_elements, instance_size;
	size_t keep_memory, keep_table;
} bh_pool;

// bh_config_pooling makes cfg use the pooling allocator sized by p.
void bh_config_pooling(wasm_config_t *cfg, const bh_pool *p);

// bh_can_reserve reports whether size bytes of address space can be
// reserved (and releases them at once).
bool bh_can_reserve(size_t size);

// bh_advise_huge_pages asks the kernel to back [addr, addr+len) with
// transparent huge pages (madvise MADV_HUGEPAGE); it returns 0 or an errno.
int bh_advise_huge_pages(uintptr_t addr, size_t len);

// bh_store_setup installs the epoch callback of run r on store and sets
// the first deadline one tick ahead.
void bh_store_setup(wasmtime_store_t *store, bh_run *r);

// bh_store_context is wasmtime_store_context, for the layout check.
wasmtime_context_t *bh_store_context(wasmtime_store_t *store);

// bh_wasi_new builds a WASI configuration; bh_wasi_* fill it in;
// bh_wasi_apply hands it to the store (which takes ownership). Each
// returns false or an error message on failure.
wasi_config_t *bh_wasi_new(void);
void bh_wasi_delete(wasi_config_t *c);
bool bh_wasi_argv(wasi_config_t *c, size_t n, const char **argv);
bool bh_wasi_env(wasi_config_t *c, size_t n, const char **names, const char **values);
// bh_wasi_apply returns NULL or a message the caller frees with free().
char *bh_wasi_apply(wasmtime_context_t *ctx, wasi_config_t *c);

// ---- linear memory (memory.c, Linux) ----

// bh_image is a module's memory image and the ranges its instances' memories
// run in (memory.go).
typedef struct bh_image bh_image;

// bh_config_memory makes wasmtime take every linear memory from memory.c.
void bh_config_memory(wasm_config_t *cfg);
// bh_image_new copies len bytes of image into a new image (len may be 0);
// NULL when out of memory.
bh_image *bh_image_new(const uint8_t *bytes, size_t len);
// bh_image_close drops the module's reference to img.
void bh_image_close(bh_image *img);
// bh_image_enter makes img the image of the first memory this thread's
// instantiation creates that can hold it (NULL: none); bh_image_leave
// clears it and reports whether a non-empty image was left untaken.
void bh_image_enter(bh_image *img);
bool bh_image_leave(void);
// bh_page_size is the kernel's page size, the unit of the page map.
size_t bh_page_size(void);
// bh_scan_off makes the engine read the page map an entry a page rather
// than ask the kernel to scan it (off), or try the scan again; for tests.
void bh_scan_off(bool off);
// bh_written_pages lists the pages a reset would restore (memory.c); for
// tests.
long bh_written_pages(uint8_t *base, size_t pages, bool scan, size_t *out, size_t max);
// bh_memory_tune sets how many free ranges an image keeps, and from how
// many memories alive a new range is a burst's (bh_prefault).
void bh_memory_tune(size_t max_kept, size_t burst_at);
// bh_malloc_tune keeps the instances' C heap from being given back to the
// kernel and faulted in again at every step (memory.c).
void bh_malloc_tune(void);
// bh_malloc_mapped is the bytes the C heap holds in chunks mapped on
// their own, or -1 where unknown (for tests).
long long bh_malloc_mapped(void);
// bh_malloc_heap is the bytes of the C heap's arenas, or -1 (for tests).
long long bh_malloc_heap(void);

// The values wasmtime's C API passes by value (wasmtime/extern.h,
// wasmtime/instance.h), as wasmtime-go holds them in its Instance and Func.
typedef struct bh_instance {
	uint64_t store_id;
	size_t private_;
} bh_instance;
typedef struct bh_func {
	uint64_t store_id;
	void *private_;
} bh_func;
typedef struct bh_memory {
	struct {
		uint64_t store_id;
		uint32_t private1;
	} id; // padded to 16 bytes, as in wasmtime's header
	uint32_t private2;
} bh_memory;

// bh_export_func, bh_export_memory and bh_export_i64 look up inst's export
// name of that kind (bh_export_i64: an i64 global, its value), returning
// false when there is none: what wasmtime-go's GetExport does, without an
// extern object and its finalizer per lookup.
bool bh_export_func(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len, bh_func *out);
bool bh_export_memory(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len, bh_memory *out);
bool bh_export_i64(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len, int64_t *out);
// bh_memory_view returns mem's data and sets *size to its length.
uint8_t *bh_memory_view(const wasmtime_context_t *cx, const bh_memory *mem, size_t *size);

#endif
