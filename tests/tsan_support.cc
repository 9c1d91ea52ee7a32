// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// Under ThreadSanitizer: Debian's oneTBB is not instrumented, so TSAN cannot
// see the happens-before edges of its task hand-offs and reports every
// parallel_for body as racing with its spawner. Limiting oneTBB to one
// thread runs each parallel algorithm on the thread that calls it, which
// keeps TSAN's reports to quiver's own synchronisation: the readers,
// writers, maintainer and re-clustering threads the tests start, and the
// locks and atomics between them.

#if defined(__SANITIZE_THREAD__)
#include <tbb/global_control.h>

namespace {
tbb::global_control tsan_tbb_threads(tbb::global_control::max_allowed_parallelism, 1);
}  // namespace
#endif
