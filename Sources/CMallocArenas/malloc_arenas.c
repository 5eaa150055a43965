// One malloc arena for every thread of `gatehouse`, unless MALLOC_ARENA_MAX says otherwise. glibc
// gives each thread that allocates an arena of its own (up to eight per core), and the service's
// threads (event loops, the reading lane, Swift's pool) each kept freed memory apart: at 100,000
// canaries, 13 MiB more under people's reads (docs/scale.md). Requests allocate little, and each
// thread's cache of small blocks takes no lock. Set in a constructor, before any thread starts:
// a limit set later leaves the arenas already made.
#include "malloc_arenas.h"

#include <stdlib.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

static int arenas = 0;

__attribute__((constructor)) static void limit_malloc_arenas(void) {
#if defined(__GLIBC__)
    if (getenv("MALLOC_ARENA_MAX") == NULL && mallopt(M_ARENA_MAX, 1) == 1) arenas = 1;
#endif
}

int gatehouse_malloc_arenas(void) { return arenas; }
