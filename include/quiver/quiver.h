// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The whole public API in one include.

#ifndef QUIVER_QUIVER_H_
#define QUIVER_QUIVER_H_

#include "quiver/db.h"
#include "quiver/kmeans.h"
#include "quiver/options.h"
#include "quiver/status.h"
#include "quiver/types.h"
#include "quiver/write_batch.h"

#endif  // QUIVER_QUIVER_H_
