// Shared by the compiled callers: the tensor file format Python writes and reads, the
// line protocol on stdin/stdout, and the timed loop (the same rules as
// workbench/harness/timing.py: warm-up by count and time, then measure until both the
// minimum count and duration are met, never past the maximum duration or count).
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace wb {

// One tensor as stored in a .wbt file: numpy dtype name, shape and raw little-endian bytes.
struct HostTensor {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<char> data;
};

// File layout: "WBT1", uint32 count, then per tensor: uint32 name length, name, uint32
// dtype length, dtype, uint32 ndim, int64 dims[ndim], uint64 nbytes, bytes.
inline std::vector<HostTensor> read_tensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot open " + path);
  char magic[4];
  in.read(magic, 4);
  if (!in || std::memcmp(magic, "WBT1", 4) != 0) throw std::runtime_error(path + " is not a WBT1 file");
  auto u32 = [&]() { uint32_t v = 0; in.read(reinterpret_cast<char*>(&v), 4); return v; };
  auto str = [&](uint32_t n) { std::string s(n, '\0'); in.read(&s[0], n); return s; };
  uint32_t count = u32();
  std::vector<HostTensor> out(count);
  for (auto& t : out) {
    t.name = str(u32());
    t.dtype = str(u32());
    uint32_t ndim = u32();
    t.shape.resize(ndim);
    in.read(reinterpret_cast<char*>(t.shape.data()), 8 * ndim);
    uint64_t nbytes = 0;
    in.read(reinterpret_cast<char*>(&nbytes), 8);
    t.data.resize(nbytes);
    in.read(t.data.data(), static_cast<std::streamsize>(nbytes));
    if (!in) throw std::runtime_error(path + " is truncated");
  }
  return out;
}

inline void write_tensors(const std::string& path, const std::vector<HostTensor>& tensors) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write("WBT1", 4);
  auto u32 = [&](uint32_t v) { out.write(reinterpret_cast<const char*>(&v), 4); };
  u32(static_cast<uint32_t>(tensors.size()));
  for (const auto& t : tensors) {
    u32(static_cast<uint32_t>(t.name.size()));
    out.write(t.name.data(), static_cast<std::streamsize>(t.name.size()));
    u32(static_cast<uint32_t>(t.dtype.size()));
    out.write(t.dtype.data(), static_cast<std::streamsize>(t.dtype.size()));
    u32(static_cast<uint32_t>(t.shape.size()));
    out.write(reinterpret_cast<const char*>(t.shape.data()), static_cast<std::streamsize>(8 * t.shape.size()));
    uint64_t nbytes = t.data.size();
    out.write(reinterpret_cast<const char*>(&nbytes), 8);
    out.write(t.data.data(), static_cast<std::streamsize>(nbytes));
  }
}

inline std::vector<std::string> split(const std::string& line, char sep) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream stream(line);
  while (std::getline(stream, part, sep)) parts.push_back(part);
  return parts;
}

inline std::string one_line(std::string text) {
  for (auto& c : text)
    if (c == '\n' || c == '\r' || c == '\t') c = ' ';
  return text;
}

struct Rule {
  int64_t warmup_iters, warmup_ns, min_iters, min_ns, max_ns, max_iters;
};

struct LoopResult {
  std::vector<int64_t> latencies_ns;
  int64_t n_warm = 0, warmup_ns = 0, duration_ns = 0;
  std::string stopped_by = "min_reached";
};

inline int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// `run(i)` runs pool entry i. Mirrors workbench.harness.timing.time_calls line by line.
inline LoopResult time_calls(const std::function<void(size_t)>& run, size_t n_pool, const Rule& rule) {
  LoopResult r;
  int64_t warm_start = now_ns();
  int64_t n_warm = 0;
  while (n_warm < rule.warmup_iters || now_ns() - warm_start < rule.warmup_ns) {
    run(static_cast<size_t>(n_warm) % n_pool);
    n_warm += 1;
    if (now_ns() - warm_start >= rule.max_ns) break;
  }
  r.n_warm = n_warm;
  r.warmup_ns = now_ns() - warm_start;
  r.latencies_ns.reserve(static_cast<size_t>(std::min<int64_t>(rule.max_iters, 1 << 20)));
  int64_t n = 0;
  int64_t start = now_ns();
  while (true) {
    size_t i = static_cast<size_t>(n) % n_pool;
    int64_t t0 = now_ns();
    run(i);
    int64_t t1 = now_ns();
    r.latencies_ns.push_back(t1 - t0);
    n += 1;
    int64_t elapsed = t1 - start;
    if (n >= rule.min_iters && elapsed >= rule.min_ns) break;
    if (elapsed >= rule.max_ns) { r.stopped_by = "max_time"; break; }
    if (n >= rule.max_iters) { r.stopped_by = "max_iters"; break; }
  }
  r.duration_ns = now_ns() - start;
  return r;
}

// Peak resident memory since the last reset, as workbench/harness/memory.py reads it.
inline void reset_peak_rss() {
  std::ofstream clear("/proc/self/clear_refs");
  if (clear) clear << "5";
}

inline int64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

inline void write_latencies(const std::string& path, const std::vector<int64_t>& values) {
  std::ofstream out(path, std::ios::binary);
  if (!out) throw std::runtime_error("cannot write " + path);
  out.write(reinterpret_cast<const char*>(values.data()), static_cast<std::streamsize>(8 * values.size()));
}

// The command loop every caller shares. `load_pool(paths)` prepares the pool outside the
// timed region and returns its size; `run_pool(i)` runs entry i; `run_file(in, out)` runs
// one feed from a file and writes its outputs.
struct Caller {
  std::function<size_t(const std::vector<std::string>&)> load_pool;
  std::function<void(size_t)> run_pool;
  std::function<void(const std::string&, const std::string&)> run_file;
};

inline int serve_commands(Caller& caller) {
  std::string line;
  while (std::getline(std::cin, line)) {
    auto parts = split(line, '\t');
    if (parts.empty()) continue;
    try {
      if (parts[0] == "quit") return 0;
      if (parts[0] == "run" && parts.size() == 3) {
        caller.run_file(parts[1], parts[2]);
        std::cout << "ok" << std::endl;
      } else if (parts[0] == "bench" && parts.size() >= 9) {
        Rule rule{std::stoll(parts[2]), std::stoll(parts[3]), std::stoll(parts[4]),
                  std::stoll(parts[5]), std::stoll(parts[6]), std::stoll(parts[7])};
        std::vector<std::string> paths(parts.begin() + 8, parts.end());
        size_t n_pool = caller.load_pool(paths);
        reset_peak_rss();
        LoopResult r = time_calls(caller.run_pool, n_pool, rule);
        write_latencies(parts[1], r.latencies_ns);
        std::cout << "ok\t" << r.n_warm << "\t" << r.warmup_ns << "\t" << r.duration_ns << "\t"
                  << r.stopped_by << "\t" << peak_rss_bytes() << std::endl;
      } else {
        std::cout << "error\tunknown command: " << one_line(line) << std::endl;
      }
    } catch (const std::exception& exc) {
      std::cout << "error\t" << one_line(exc.what()) << std::endl;
    }
  }
  return 0;
}

}  // namespace wb
