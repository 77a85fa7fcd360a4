# Writes OUTPUT, a C++ source defining sluice::worker::<NAME> (the bytes of INPUT) and
# <NAME>Size: how the compiled BPF program is built into the binary. Run with cmake -P.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" hex_length)
math(EXPR size "${hex_length} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" bytes "${bytes}")
file(WRITE "${OUTPUT}"
  "// Generated from ${INPUT} by worker/embed_bytes.cmake: do not edit.\n"
  "#include <cstddef>\n"
  "namespace sluice::worker {\n"
  "extern const unsigned char ${NAME}[];\n"
  "extern const size_t ${NAME}Size;\n"
  "alignas(8) const unsigned char ${NAME}[] = {\n${bytes}\n};\n"
  "const size_t ${NAME}Size = ${size};\n"
  "}  // namespace sluice::worker\n")
