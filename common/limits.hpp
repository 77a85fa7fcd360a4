#pragma once
// Compile-time limits shared by the config validation and the shared-memory layout. Types
// only, no includes beyond <cstddef>: any layer may include it without pulling in the layout.

#include <cstddef>

namespace sluice {

inline constexpr size_t kMaxTargets = 256;         // [[targets]] entries in one config
inline constexpr size_t kAddressesPerTarget = 16;  // addresses kept per target name
inline constexpr size_t kMaxSlots = kMaxTargets * kAddressesPerTarget;
inline constexpr size_t kMaxWorkers = 64;  // worker processes (per-worker shares in the table)

}  // namespace sluice
