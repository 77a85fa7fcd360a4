#pragma once
// Exit codes shared by the master and its children.

namespace sluice {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // a usage, config or start-up error of the master
// A child that cannot ever work (as nginx's exit code 2): the master does not respawn it.
inline constexpr int kExitFatal = 2;

}  // namespace sluice
