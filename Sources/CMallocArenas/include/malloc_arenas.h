#ifndef GATEHOUSE_MALLOC_ARENAS_H
#define GATEHOUSE_MALLOC_ARENAS_H

/// The number of malloc arenas set before `main` ran (0: left to glibc or to MALLOC_ARENA_MAX).
int gatehouse_malloc_arenas(void);

#endif
