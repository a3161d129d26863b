#!/usr/bin/env bash
# Builds libfes-lite's speed program from the libfes-lite directory given as $1 (its src/ holds
# the public-domain sources) and prints each kernel's single-thread candidates/s as JSON lines:
# {"kernel":"avx512bw_64x16","value":7.77e10}. `qoin-bench mq-search` runs it to print the
# reference beside our backends. It does what libfes-lite's own speed.sh does, and also
# generates the two AVX-512 assembly files (avx512_enum.s, avx512x2_enum.s) that speed.sh
# leaves out, without which it fails to link on an AVX-512 machine. Needs gcc and python3.
set -euo pipefail
src=$(cd "$1/src" && pwd)
b=$(mktemp -d)
trap 'rm -rf "$b"' EXIT
cp -r "$src/." "$b/"
cd "$b"
cfg='#define feslite_VERSION_MAJOR 1\n#define feslite_VERSION_MINOR 1\n#define HAVE_SSE2\n'
files="feslite.c naive_eval.c generic_minimal.c generic_eval32.c generic_1x32.c generic_2x16.c generic_2x32.c generic_4x16.c x86_cpuid.c sse2_4x32.c sse2_8x16.c sse2_enum.s"
if grep -q avx2 /proc/cpuinfo; then
  cfg="$cfg#define HAVE_AVX2\n"
  files="$files avx2_8x32.c avx2_16x16.c avx2_enum.s avx2_enum_batch.s"
fi
if grep -q avx512bw /proc/cpuinfo; then
  cfg="$cfg#define HAVE_AVX512\n"
  files="$files avx512_16x32.c avx512_32x16.c avx512_64x16.c avx512_enum.s avx512x2_enum.s"
  python3 avx512_codegen.py > avx512_enum.s
  python3 avx512x2_codegen.py > avx512x2_enum.s
fi
printf "$cfg" > feslite-config.h
python3 sse2_codegen.py > sse2_enum.s
python3 avx2_codegen.py > avx2_enum.s
python3 avx2_codegen_batch.py > avx2_enum_batch.s
gcc -O3 -march=native -I. -c $files 2>/dev/null
gcc -O3 -march=native -I. speed.c ./*.o -o speed -lm 2>/dev/null
./speed 2>&1 | awk '/^kernel/{k=$3; gsub(/[\[\]]/,"",k)} /candidate\/s/{split($2,a,"^"); printf "{\"kernel\":\"%s\",\"value\":%.4g}\n", k, 2^a[2]}'
