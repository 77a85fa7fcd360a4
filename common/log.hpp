#pragma once
// Event logging to stderr. Every line is formatted into one buffer and written with a single
// write(), so lines of different processes and threads never interleave. Each line carries a
// UTC timestamp, the process role (master, worker, health) and the pid.

#include <cstdarg>
#include <string>

namespace sluice::log {

// notice: lifecycle (start, reloads, health changes); info adds one line per connection.
enum class Level { error = 0, warn = 1, notice = 2, info = 3, debug = 4 };

// Sets the role printed on every line of this process (call after fork).
void set_role(const char* role);
void set_level(Level level);
bool enabled(Level level);

// printf-style; a line longer than the buffer is truncated, never split.
void write(Level level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace sluice::log

#define SLUICE_LOG(level, ...)                                                       \
    do {                                                                             \
        if (::sluice::log::enabled(level)) ::sluice::log::write(level, __VA_ARGS__); \
    } while (0)
#define LOG_ERROR(...) SLUICE_LOG(::sluice::log::Level::error, __VA_ARGS__)
#define LOG_WARN(...) SLUICE_LOG(::sluice::log::Level::warn, __VA_ARGS__)
#define LOG_NOTICE(...) SLUICE_LOG(::sluice::log::Level::notice, __VA_ARGS__)
#define LOG_INFO(...) SLUICE_LOG(::sluice::log::Level::info, __VA_ARGS__)
#define LOG_DEBUG(...) SLUICE_LOG(::sluice::log::Level::debug, __VA_ARGS__)
