//go:build cgo

// The engine's C side: the epoch-deadline callback that ends a run, and
// WASI standard streams that call back into Go. See shim.h.

#include "shim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

// From wasmtime (see shim.h).
extern wasmtime_error_t *wasmtime_error_new(const char *);
extern wasmtime_context_t *wasmtime_store_context(wasmtime_store_t *store);
extern void wasmtime_context_set_epoch_deadline(wasmtime_context_t *context, uint64_t ticks_beyond_current);
extern void wasmtime_store_epoch_deadline_callback(wasmtime_store_t *store,
	wasmtime_error_t *(*func)(wasmtime_context_t *context, void *data,
		uint64_t *epoch_deadline_delta, uint8_t *update_kind),
	void *data, void (*finalizer)(void *));
extern wasi_config_t *wasi_config_new(void);
extern void wasi_config_delete(wasi_config_t *);
extern bool wasi_config_set_argv(wasi_config_t *config, size_t argc, const char *argv[]);
extern bool wasi_config_set_env(wasi_config_t *config, size_t envc, const char *names[], const char *values[]);
extern void wasi_config_set_stdin_bytes(wasi_config_t *config, bh_byte_vec *binary);
extern void wasi_config_set_stdout_custom(wasi_config_t *config,
	ptrdiff_t (*callback)(void *, const unsigned char *, size_t), void *data, void (*finalizer)(void *));
extern void wasi_config_set_stderr_custom(wasi_config_t *config,
	ptrdiff_t (*callback)(void *, const unsigned char *, size_t), void *data, void (*finalizer)(void *));
extern bool wasi_config_preopen_dir(wasi_config_t *config, const char *host_path, const char *guest_path,
	size_t dir_perms, size_t file_perms);
extern void wasm_byte_vec_new(bh_byte_vec *out, size_t size, const uint8_t *data);
extern wasmtime_error_t *wasmtime_context_set_wasi(wasmtime_context_t *context, wasi_config_t *wasi);
extern void wasmtime_error_message(const wasmtime_error_t *error, bh_byte_vec *message);
extern void wasmtime_error_delete(wasmtime_error_t *error);
extern void wasm_byte_vec_delete(bh_byte_vec *);

typedef struct wasmtime_pooling_allocation_config_t wasmtime_pooling_allocation_config_t;
extern wasmtime_pooling_allocation_config_t *wasmtime_pooling_allocation_config_new(void);
extern void wasmtime_pooling_allocation_config_delete(wasmtime_pooling_allocation_config_t *);
extern void wasmtime_pooling_allocation_strategy_set(wasm_config_t *, const wasmtime_pooling_allocation_config_t *);
#define BH_POOL_PROP(name, ty) extern void wasmtime_pooling_allocation_config_##name##_set(wasmtime_pooling_allocation_config_t *, ty);
BH_POOL_PROP(total_core_instances, uint32_t)
BH_POOL_PROP(total_memories, uint32_t)
BH_POOL_PROP(total_tables, uint32_t)
BH_POOL_PROP(max_memories_per_module, uint32_t)
BH_POOL_PROP(max_tables_per_module, uint32_t)
BH_POOL_PROP(max_unused_warm_slots, uint32_t)
BH_POOL_PROP(max_memory_size, size_t)
BH_POOL_PROP(table_elements, size_t)
BH_POOL_PROP(max_core_instance_size, size_t)
BH_POOL_PROP(linear_memory_keep_resident, size_t)
BH_POOL_PROP(table_keep_resident, size_t)

// ---- runs ----

bh_run *bh_run_new(void) { return calloc(1, sizeof(bh_run)); }

void bh_run_free(bh_run *r) { free(r); }

void bh_run_stop(bh_run *r) { __atomic_store_n(&r->stop, 1, __ATOMIC_SEQ_CST); }

int bh_run_interrupted(bh_run *r) { return __atomic_load_n(&r->interrupted, __ATOMIC_SEQ_CST); }

// ---- interruption ----

// bh_epoch is called by wasmtime in the running guest's thread each time
// the engine's epoch passes the store's deadline: at a function entry or
// loop back-edge. It ends the run once Go has set stop, and otherwise asks
// to be called again at the next tick.
static wasmtime_error_t *bh_epoch(wasmtime_context_t *ctx, void *data, uint64_t *delta, uint8_t *kind) {
	(void)ctx;
	bh_run *r = data;
	if (__atomic_load_n(&r->stop, __ATOMIC_SEQ_CST)) {
		__atomic_store_n(&r->interrupted, 1, __ATOMIC_SEQ_CST);
		return wasmtime_error_new("blockhost: execution interrupted");
	}
	*delta = 1;
	*kind = 0; // WASMTIME_UPDATE_DEADLINE_CONTINUE
	return NULL;
}

void bh_store_setup(wasmtime_store_t *store, bh_run *r) {
	wasmtime_store_epoch_deadline_callback(store, bh_epoch, r, NULL);
	wasmtime_context_set_epoch_deadline(wasmtime_store_context(store), 1);
}

wasmtime_context_t *bh_store_context(wasmtime_store_t *store) { return wasmtime_store_context(store); }

// ---- instance allocation ----

void bh_config_pooling(wasm_config_t *cfg, const bh_pool *p) {
	wasmtime_pooling_allocation_config_t *c = wasmtime_pooling_allocation_config_new();
	wasmtime_pooling_allocation_config_total_core_instances_set(c, p->instances);
	wasmtime_pooling_allocation_config_total_memories_set(c, p->memories);
	wasmtime_pooling_allocation_config_total_tables_set(c, p->tables);
	wasmtime_pooling_allocation_config_max_memories_per_module_set(c, p->memories_per_module);
	wasmtime_pooling_allocation_config_max_tables_per_module_set(c, p->tables_per_module);
	wasmtime_pooling_allocation_config_max_unused_warm_slots_set(c, p->warm_slots);
	wasmtime_pooling_allocation_config_max_memory_size_set(c, p->max_memory);
	wasmtime_pooling_allocation_config_table_elements_set(c, p->table_elements);
	wasmtime_pooling_allocation_config_max_core_instance_size_set(c, p->instance_size);
	wasmtime_pooling_allocation_config_linear_memory_keep_resident_set(c, p->keep_memory);
	wasmtime_pooling_allocation_config_table_keep_resident_set(c, p->keep_table);
	wasmtime_pooling_allocation_strategy_set(cfg, c);
	wasmtime_pooling_allocation_config_delete(c);
}

bool bh_can_reserve(size_t size) {
	void *p = mmap(NULL, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED) {
		return false;
	}
	munmap(p, size);
	return true;
}

// ---- WASI ----

wasi_config_t *bh_wasi_new(void) { return wasi_config_new(); }

void bh_wasi_delete(wasi_config_t *c) { wasi_config_delete(c); }

bool bh_wasi_argv(wasi_config_t *c, size_t n, const char **argv) { return wasi_config_set_argv(c, n, argv); }

bool bh_wasi_env(wasi_config_t *c, size_t n, const char **names, const char **values) {
	return wasi_config_set_env(c, n, names, values);
}

char *bh_wasi_apply(wasmtime_context_t *ctx, wasi_config_t *c) {
	wasmtime_error_t *err = wasmtime_context_set_wasi(ctx, c);
	if (err == NULL) {
		return NULL;
	}
	bh_byte_vec msg;
	wasmtime_error_message(err, &msg);
	char *out = malloc(msg.size + 1);
	if (out != NULL) {
		memcpy(out, msg.data, msg.size);
		out[msg.size] = 0;
	}
	wasm_byte_vec_delete(&msg);
	wasmtime_error_delete(err);
	return out;
}

// ---- huge pages ----

int bh_advise_huge_pages(uintptr_t addr, size_t len) {
#ifdef MADV_HUGEPAGE
	return madvise((void *)addr, len, MADV_HUGEPAGE) == 0 ? 0 : errno;
#else
	(void)addr;
	(void)len;
	return ENOSYS;
#endif
}

// Exports, looked up without wasmtime-go's Extern (shim.h).

enum { BH_EXTERN_FUNC = 0, BH_EXTERN_GLOBAL = 1, BH_EXTERN_MEMORY = 3 };
enum { BH_VAL_I64 = 1 };

typedef struct bh_extern {
	uint8_t kind;
	union {
		bh_func func;
		bh_memory memory;
		struct { uint64_t store_id; uint32_t private1, private2, private3; } global;
		void *other[4]; // larger than any member of wasmtime's union (24 bytes in v39)
	} of;
} bh_extern;

typedef struct bh_val {
	uint8_t kind;
	union {
		int64_t i64;
		void *other[4]; // larger than any member of wasmtime's union (24 bytes in v39)
	} of;
} bh_val;

extern bool wasmtime_instance_export_get(wasmtime_context_t *store, const bh_instance *instance,
	const char *name, size_t name_len, bh_extern *item);
extern void wasmtime_extern_delete(bh_extern *val);
extern void wasmtime_global_get(wasmtime_context_t *store, const void *global, bh_val *out);
extern void wasmtime_val_unroot(bh_val *val);
extern uint8_t *wasmtime_memory_data(const wasmtime_context_t *store, const bh_memory *memory);
extern size_t wasmtime_memory_data_size(const wasmtime_context_t *store, const bh_memory *memory);

static bool bh_export(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len,
		uint8_t kind, bh_extern *ext) {
	if (!wasmtime_instance_export_get(cx, inst, name, len, ext)) {
		return false;
	}
	if (ext->kind != kind) {
		wasmtime_extern_delete(ext);
		return false;
	}
	return true;
}

bool bh_export_func(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len, bh_func *out) {
	bh_extern ext;
	if (!bh_export(cx, inst, name, len, BH_EXTERN_FUNC, &ext)) {
		return false;
	}
	*out = ext.of.func;
	return true;
}

bool bh_export_memory(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len, bh_memory *out) {
	bh_extern ext;
	if (!bh_export(cx, inst, name, len, BH_EXTERN_MEMORY, &ext)) {
		return false;
	}
	*out = ext.of.memory;
	return true;
}

bool bh_export_i64(wasmtime_context_t *cx, const bh_instance *inst, const char *name, size_t len, int64_t *out) {
	bh_extern ext;
	if (!bh_export(cx, inst, name, len, BH_EXTERN_GLOBAL, &ext)) {
		return false;
	}
	bh_val v;
	wasmtime_global_get(cx, &ext.of.global, &v);
	bool ok = v.kind == BH_VAL_I64;
	if (ok) {
		*out = v.of.i64;
	}
	return ok;
}

uint8_t *bh_memory_view(const wasmtime_context_t *cx, const bh_memory *mem, size_t *size) {
	*size = wasmtime_memory_data_size(cx, mem);
	return wasmtime_memory_data(cx, mem);
}
