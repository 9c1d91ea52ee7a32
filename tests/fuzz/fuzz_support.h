// Copyright (c) quiver authors. Licensed under the Apache License 2.0.
//
// The machinery of the seeded randomized tests in fuzz_test.cc: the random
// source, the iteration and seed settings, the byte mutator, the record of
// what runs now (printed if the process dies, so that a crash can be
// replayed), a watchdog against hangs, and, in ASan builds, a tracker of
// the largest single allocation (through the sanitizer's allocator hooks).
//
// Settings (environment):
//   QUIVER_FUZZ_SEED        the seed (default 0x5eed); every target derives
//                           its inputs from it
//   QUIVER_FUZZ_ITERATIONS  inputs per target (default: each target's own,
//                           a few thousand or fewer; see fuzz_test.cc)
//   QUIVER_FUZZ_FIRST       first iteration (default 0). The stateless
//                           targets derive iteration i's input from
//                           (seed, target, i) alone, so FIRST=i ITERATIONS=1
//                           replays one input.
//   QUIVER_FUZZ_SECONDS     a target stops starting inputs after this many
//                           seconds (default 0: no limit); the summary line
//                           says how many ran. For long modes that must fit
//                           a time budget.
//   QUIVER_FUZZ_STALL_SECONDS  an iteration running longer than this is a
//                           hang: the context is printed and the process
//                           aborts (default 300)
//   QUIVER_FUZZ_SAVE_DIR    the file targets also write each input there
//                           (the last one is the one that failed)

#ifndef QUIVER_TESTS_FUZZ_FUZZ_SUPPORT_H_
#define QUIVER_TESTS_FUZZ_FUZZ_SUPPORT_H_

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "test_util.h"

// Sanitizer runtime entry points, declared weak: null in a build without
// the sanitizer, so the same file builds everywhere.
extern "C" {
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                              void (*free_hook)(const volatile void*))
    __attribute__((weak));
void __sanitizer_set_death_callback(void (*callback)(void)) __attribute__((weak));
}

namespace quiver::fuzz {

// SplitMix64: small, fast, and the same sequence on every platform (the
// standard distributions are not), so a seed replays anywhere.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  // 0..n-1 (0 when n is 0); the modulo bias does not matter here.
  uint64_t Uniform(uint64_t n) { return n == 0 ? 0 : Next() % n; }
  bool OneIn(uint64_t n) { return Uniform(n) == 0; }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[Uniform(v.size())];
  }
  template <typename T, size_t N>
  const T& Pick(const T (&a)[N]) {
    return a[Uniform(N)];
  }
  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (char& c : s) c = static_cast<char>(Next());
    return s;
  }

 private:
  uint64_t state_;
};

inline uint64_t Mix(uint64_t a, uint64_t b) {
  Rng r(a ^ (b * 0xd1342543de82ef95ULL) ^ 0x2545f4914f6cdd1dULL);
  r.Next();
  return r.Next();
}

inline uint64_t HashName(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  return h;
}

// ---------------------------------------------------------------------------
// What runs now. Kept in a fixed buffer so that a dying process (an ASan or
// UBSan report, a signal, the watchdog) can print it without allocating.

inline std::mutex& ContextMutex() {
  static std::mutex mu;
  return mu;
}
inline char* ContextBuffer() {
  static char text[512] = "";
  return text;
}
inline void PrintContext() {
  const char* text = ContextBuffer();
  ssize_t ignored = ::write(2, text, std::strlen(text));
  (void)ignored;
}

inline void OnFatalSignal(int sig) {
  PrintContext();
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Makes a dying process print the context. Under a sanitizer its death
// callback does (the sanitizer owns the signal handlers); elsewhere a
// handler of the fatal signals does, then dies of the signal as before.
inline void InstallDeathReport() {
  static const bool installed = [] {
    if (__sanitizer_set_death_callback != nullptr) {
      __sanitizer_set_death_callback(PrintContext);
    } else {
      for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, OnFatalSignal);
    }
    return true;
  }();
  (void)installed;
}

// ---------------------------------------------------------------------------
// The largest single allocation made by any thread while a tracker is
// armed. Only in builds with the sanitizer allocator (ASan): elsewhere
// available() is false and the checks that use it are skipped.

inline std::atomic<bool>& AllocWatching() {
  static std::atomic<bool> on{false};
  return on;
}
inline std::atomic<size_t>& AllocLargest() {
  static std::atomic<size_t> largest{0};
  return largest;
}
inline void OnMalloc(const volatile void*, size_t size) {
  if (!AllocWatching().load(std::memory_order_relaxed)) return;
  size_t cur = AllocLargest().load(std::memory_order_relaxed);
  while (size > cur &&
         !AllocLargest().compare_exchange_weak(cur, size, std::memory_order_relaxed)) {
  }
}
inline void OnFree(const volatile void*) {}

class LargestAllocation {
 public:
  LargestAllocation() {
    (void)available();  // installs the hooks on first use
    AllocLargest().store(0);
    AllocWatching().store(true);
  }
  ~LargestAllocation() { AllocWatching().store(false); }
  LargestAllocation(const LargestAllocation&) = delete;
  LargestAllocation& operator=(const LargestAllocation&) = delete;

  size_t bytes() const { return AllocLargest().load(); }

  static bool available() {
    static const bool ok = __sanitizer_install_malloc_and_free_hooks != nullptr &&
                           __sanitizer_install_malloc_and_free_hooks(OnMalloc, OnFree) != 0;
    return ok;
  }
};

// ---------------------------------------------------------------------------
// One target's run: its settings, its per-iteration randomness, the
// context, the watchdog, and a summary line at the end.

class FuzzRun {
 public:
  // `stateful`: an iteration's input depends on the ones before it (the DB
  // target), so a replay starts from an earlier iteration: the first, or
  // the one set_replay_from() names.
  FuzzRun(const char* target, uint64_t default_iterations, bool stateful = false)
      : target_(target),
        stateful_(stateful),
        seed_(test::EnvU64("QUIVER_FUZZ_SEED", 0x5eed)),
        first_(test::EnvU64("QUIVER_FUZZ_FIRST", 0)),
        count_(test::EnvU64("QUIVER_FUZZ_ITERATIONS", default_iterations)),
        stall_seconds_(static_cast<double>(test::EnvU64("QUIVER_FUZZ_STALL_SECONDS", 300))),
        budget_seconds_(static_cast<double>(test::EnvU64("QUIVER_FUZZ_SECONDS", 0))),
        start_(std::chrono::steady_clock::now()),
        watchdog_([this] { Watch(); }) {
    InstallDeathReport();
    (void)LargestAllocation::available();  // installs the hooks once
    Begin(first_, kSetup);
  }
  ~FuzzRun() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    watchdog_.join();
    const double secs =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::printf("[fuzz] target %s: %llu inputs (seed %llu, first %llu) in %.1f s\n", target_,
                static_cast<unsigned long long>(ran_), static_cast<unsigned long long>(seed_),
                static_cast<unsigned long long>(first_), secs);
    std::lock_guard lock(ContextMutex());
    ContextBuffer()[0] = '\0';
  }
  FuzzRun(const FuzzRun&) = delete;
  FuzzRun& operator=(const FuzzRun&) = delete;

  uint64_t first() const { return first_; }
  // Whether iteration i is to run: within the iterations asked for, and
  // within QUIVER_FUZZ_SECONDS when set.
  bool More(uint64_t iteration) const {
    if (iteration >= end()) return false;
    if (budget_seconds_ <= 0) return true;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count() <
           budget_seconds_;
  }
  // Stateful targets: where a replay of the coming iterations must start.
  void set_replay_from(uint64_t iteration) { replay_from_ = iteration; }
  uint64_t end() const { return first_ + count_; }
  uint64_t seed() const { return seed_; }

  // The randomness of iteration i (stateless targets) and of the set-up.
  Rng RngFor(uint64_t iteration) const { return Rng(Mix(Mix(seed_, HashName(target_)), iteration)); }
  Rng SetupRng() const { return Rng(Mix(Mix(seed_, HashName(target_)), ~uint64_t{0})); }

  // Marks the start of iteration i (`what`: a short note, e.g. the operation).
  void Begin(uint64_t iteration, const char* what = "") {
    if (iteration < end()) ran_ = std::max(ran_, iteration - first_ + (what == kSetup ? 0 : 1));
    {
      std::lock_guard lock(ContextMutex());
      if (stateful_) {
        std::snprintf(ContextBuffer(), 512,
                      "[fuzz] while running target %s, iteration %llu%s%s: replay with "
                      "QUIVER_FUZZ_SEED=%llu QUIVER_FUZZ_FIRST=%llu QUIVER_FUZZ_ITERATIONS=%llu\n",
                      target_, static_cast<unsigned long long>(iteration), what[0] ? ", " : "",
                      what, static_cast<unsigned long long>(seed_),
                      static_cast<unsigned long long>(replay_from_),
                      static_cast<unsigned long long>(iteration - replay_from_ + 1));
      } else {
        std::snprintf(ContextBuffer(), 512,
                      "[fuzz] while running target %s, iteration %llu%s%s: replay with "
                      "QUIVER_FUZZ_SEED=%llu QUIVER_FUZZ_FIRST=%llu QUIVER_FUZZ_ITERATIONS=1\n",
                      target_, static_cast<unsigned long long>(iteration), what[0] ? ", " : "",
                      what, static_cast<unsigned long long>(seed_),
                      static_cast<unsigned long long>(iteration));
      }
    }
    ticks_.fetch_add(1, std::memory_order_relaxed);
  }

  std::string Repro() const {
    std::lock_guard lock(ContextMutex());
    return ContextBuffer();
  }

 private:
  // Aborts with the context when no iteration began for stall_seconds_.
  void Watch() {
    std::unique_lock lock(mu_);
    uint64_t last = ticks_.load();
    auto since = std::chrono::steady_clock::now();
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return done_; })) {
      const uint64_t now_ticks = ticks_.load();
      const auto now = std::chrono::steady_clock::now();
      if (now_ticks != last) {
        last = now_ticks;
        since = now;
      } else if (std::chrono::duration<double>(now - since).count() > stall_seconds_) {
        {
          std::lock_guard context(ContextMutex());
          PrintContext();
        }
        std::fprintf(stderr, "[fuzz] no progress for %.0f s: a hang\n", stall_seconds_);
        std::abort();
      }
    }
  }

  static constexpr const char* kSetup = "setup";

  const char* target_;
  bool stateful_;
  uint64_t seed_, first_, count_;
  uint64_t replay_from_ = first_;
  double stall_seconds_;
  double budget_seconds_;
  uint64_t ran_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::atomic<uint64_t> ticks_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread watchdog_;  // last: starts once the members above exist
};

// ---------------------------------------------------------------------------
// The byte mutator: one to a few edits of the kinds that break parsers,
// among them the integer values at field boundaries (0, -1, 2^31, ...).

inline uint32_t Interesting32(Rng& rng) {
  static constexpr uint32_t kValues[] = {0,          1,          2,          3,          7,
                                         8,          16,         0x7f,       0x80,       0xff,
                                         0x100,      0x7fff,     0x8000,     0xffff,     0x10000,
                                         0x10001,    0x7fffffff, 0x80000000, 0x80000001, 0xfffffffe,
                                         0xffffffff, 0x40000000, 1000000};
  return rng.OneIn(4) ? static_cast<uint32_t>(rng.Next()) : rng.Pick(kValues);
}

inline uint64_t Interesting64(Rng& rng) {
  static constexpr uint64_t kValues[] = {0,
                                         1,
                                         8,
                                         0x7fffffffULL,
                                         0x80000000ULL,
                                         0xffffffffULL,
                                         0x100000000ULL,
                                         0x10000000000ULL,
                                         0x7fffffffffffffffULL,
                                         0x8000000000000000ULL,
                                         0xfffffffffffffffeULL,
                                         0xffffffffffffffffULL};
  return rng.OneIn(4) ? rng.Next() : rng.Pick(kValues);
}

// A position in s for a `width`-byte field; half the time aligned to it.
inline size_t FieldPos(Rng& rng, const std::string& s, size_t width) {
  const size_t pos = rng.Uniform(s.size() - width + 1);
  return rng.OneIn(2) ? pos - pos % width : pos;
}

inline std::string Mutate(Rng& rng, std::string s, const std::vector<std::string>& others) {
  const int edits = 1 + static_cast<int>(rng.Uniform(rng.OneIn(4) ? 8 : 2));
  for (int e = 0; e < edits; ++e) {
    switch (rng.Uniform(11)) {
      case 0:  // flip a bit
        if (!s.empty()) s[rng.Uniform(s.size())] ^= static_cast<char>(1u << rng.Uniform(8));
        break;
      case 1: {  // a byte at its edges
        static constexpr unsigned char kBytes[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 0xfe};
        if (!s.empty()) s[rng.Uniform(s.size())] = static_cast<char>(rng.Pick(kBytes));
        break;
      }
      case 2:  // a 32-bit field
        if (s.size() >= 4) {
          const uint32_t v = Interesting32(rng);
          std::memcpy(&s[FieldPos(rng, s, 4)], &v, 4);
        }
        break;
      case 3:  // a 64-bit field
        if (s.size() >= 8) {
          const uint64_t v = Interesting64(rng);
          std::memcpy(&s[FieldPos(rng, s, 8)], &v, 8);
        }
        break;
      case 4:  // truncate
        s.resize(rng.Uniform(s.size() + 1));
        break;
      case 5:  // extend with zeros, random bytes or its own tail
        if (rng.OneIn(3)) {
          s += std::string(rng.Uniform(64), '\0');
        } else if (rng.OneIn(2) || s.empty()) {
          s += rng.Bytes(rng.Uniform(64));
        } else {
          s += s.substr(rng.Uniform(s.size()));
        }
        break;
      case 6:  // splice: a prefix of this, a suffix of another
        if (!others.empty()) {
          const std::string& o = rng.Pick(others);
          s = s.substr(0, rng.Uniform(s.size() + 1)) + o.substr(rng.Uniform(o.size() + 1));
        }
        break;
      case 7:  // erase a range
        if (!s.empty()) {
          const size_t pos = rng.Uniform(s.size());
          s.erase(pos, 1 + rng.Uniform(std::min<size_t>(16, s.size() - pos)));
        }
        break;
      case 8:  // insert random bytes
        s.insert(rng.Uniform(s.size() + 1), rng.Bytes(1 + rng.Uniform(8)));
        break;
      case 9:  // copy a range of itself over another place
        if (s.size() >= 2) {
          const size_t len = 1 + rng.Uniform(std::min<size_t>(16, s.size() / 2));
          const size_t from = rng.Uniform(s.size() - len + 1), to = rng.Uniform(s.size() - len + 1);
          const std::string piece = s.substr(from, len);
          s.replace(to, len, piece);
        }
        break;
      case 10:  // a random byte
        if (!s.empty()) s[rng.Uniform(s.size())] = static_cast<char>(rng.Next());
        break;
    }
  }
  return s;
}

}  // namespace quiver::fuzz

#endif  // QUIVER_TESTS_FUZZ_FUZZ_SUPPORT_H_
