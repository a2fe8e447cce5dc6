#!/usr/bin/env bash
# Build llama.cpp's shared libraries in several variants from the pinned llama-cpp-python sdist, for
# bench_llama_build.py. Only the `llama` target (libllama + libggml*): about 75 s per variant on 2 cores.
#
#   bash benchmarks/perf/build_llama_variants.sh OUT_DIR        -> OUT_DIR/{native,avx2,avx512}/lib
#
# native: llama.cpp's default (-march=native; AMX on where the CPU has it: crashes on our AMX Xeon VMs)
# avx2:   the x86-64-v3 baseline every x86 machine here has
# avx512: AVX-512 + VNNI + BF16, AMX off (what `agentdistill models build-flags` gives on an AVX-512 CPU)
set -euo pipefail
out=$(realpath -m "${1:?usage: build_llama_variants.sh OUT_DIR}")
mkdir -p "$out/src"
cd "$out/src"
if [ ! -d llama_cpp_python-0.3.36 ]; then
  pip download --quiet --no-deps --no-binary :all: llama-cpp-python==0.3.36 -d .
  tar xzf llama_cpp_python-0.3.36.tar.gz
fi
src="$out/src/llama_cpp_python-0.3.36/vendor/llama.cpp"
x86="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"
declare -A variants=(
  [native]=""
  [avx2]="$x86"
  [avx512]="$x86 -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON"
)
for name in "${!variants[@]}"; do
  build="$out/$name"
  mkdir -p "$build/lib"
  # shellcheck disable=SC2086  # the flags are meant to split
  cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_CURL=OFF \
    ${variants[$name]} > "$build/cmake.log"
  cmake --build "$build" --target llama -j "$(nproc)" > "$build/build.log"
  cp -a "$build"/bin/*.so* "$build/lib/"
  echo "$name -> $build/lib"
done
