// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// QUIVER_EXPORT marks the symbols of the public API. The library is built with
// hidden visibility, so only what carries this macro is visible to users of
// the shared library.

#ifndef QUIVER_EXPORT_H_
#define QUIVER_EXPORT_H_

#if defined(_WIN32)
#if defined(QUIVER_BUILDING_LIBRARY)
#define QUIVER_EXPORT __declspec(dllexport)
#else
#define QUIVER_EXPORT __declspec(dllimport)
#endif
#else
#define QUIVER_EXPORT [[gnu::visibility("default")]]
#endif

#endif  // QUIVER_EXPORT_H_
