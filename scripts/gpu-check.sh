#!/usr/bin/env bash
# The GPU check of the cuda backend, in one call on a GPU machine that has a driver but maybe no Java and no CUDA
# toolkit (DEVELOPERS.md: the device tool carries at most 64 MiB per call).
#
#   scripts/gpu-check.sh pack          here: builds Kiln and writes target/gpu-check/ (a jlink'd Java 17 runtime and the
#                                      CUDA 12.9 runtime + NVRTC libraries as .tar.xz, the thin jars the cuda backend
#                                      needs, the reference models); prints its size
#   scripts/gpu-check.sh run [OUT]     there (from the repository root, target/gpu-check carried): unpacks, checks the
#                                      cuda backend against PyTorch's outputs, times the seed MLP at batch 4096 and
#                                      65536 beside the host-to-device bandwidth, writes OUT/gpu-check.md (OUT: $OUT)
#
# With the device tool:  run(command="scripts/gpu-check.sh run", carry=["target/gpu-check"], timeout_s=300)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pack=$root/target/gpu-check
cmd=${1:-}

case "$cmd" in
pack)
    cd "$root"
    mvn -B -q -DskipTests install
    rm -rf "$pack" && mkdir -p "$pack/lib" "$pack/models"
    mvn -B -q -pl jobs dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$pack/all" >/dev/null
    # Only what the cuda backend, the ONNX importer and safetensors need: no Spark, Hadoop, Arrow, ND4J or OpenBLAS.
    for jar in "$pack"/all/kiln-engine-*.jar "$pack"/all/kiln-serialization-*.jar "$pack"/all/javacpp-*.jar "$pack"/all/cuda-*.jar "$pack"/all/protobuf-java-*.jar \
               "$pack"/all/jackson-*-2.*.jar "$pack"/all/slf4j-api-*.jar; do
        [ -e "$jar" ] && cp "$jar" "$pack/lib/"
    done
    cp jobs/target/kiln-jobs-*[0-9T].jar "$pack/lib/" 2>/dev/null || cp "$(ls jobs/target/kiln-jobs-*.jar | grep -v -- -all)" "$pack/lib/"
    rm -rf "$pack/all"
    for model in mlp cnn encoder; do
        mkdir -p "$pack/models/$model"
        cp "$root/../shared/models/$model"/{model.onnx,inputs.safetensors,expected.safetensors} "$pack/models/$model/"
    done
    jlink --add-modules java.base,java.logging,java.management,java.naming,java.xml,jdk.unsupported,jdk.incubator.vector \
          --strip-debug --no-header-files --no-man-pages --output "$pack/jre"
    tar -C "$pack" -cJf "$pack/jre.tar.xz" jre && rm -rf "$pack/jre"
    # The CUDA 12.9 runtime and NVRTC from JavaCPP's cuda-redist (cuBLASLt is not in it: without a toolkit on the GPU
    # machine, GEMMs run on Kiln's own kernel and the table says so).
    version=$(sed -n "s:.*<cuda.presets.version>\(.*\)</cuda.presets.version>.*:\1:p" pom.xml)
    redist=$HOME/.m2/repository/org/bytedeco/cuda-redist/$version/cuda-redist-$version-linux-x86_64.jar
    [ -e "$redist" ] || mvn -B -q dependency:get -Dartifact="org.bytedeco:cuda-redist:$version:jar:linux-x86_64" -Dtransitive=false
    mkdir -p "$pack/cuda-libs"
    (cd "$pack/cuda-libs" && unzip -q -j "$redist" 'org/bytedeco/cuda/linux-x86_64/libcudart.so.*' \
        'org/bytedeco/cuda/linux-x86_64/libnvrtc.so.*' 'org/bytedeco/cuda/linux-x86_64/libnvrtc-builtins.so.*')
    tar -C "$pack" -cJf "$pack/cuda-libs.tar.xz" cuda-libs && rm -rf "$pack/cuda-libs"
    du -sh "$pack" && du -sh "$pack"/*
    ;;
run)
    out=${2:-${OUT:-.}}
    [ -d "$pack" ] || { echo "gpu-check: $pack is missing: run 'scripts/gpu-check.sh pack' here and carry target/gpu-check" >&2; exit 2; }
    cd "$pack"
    [ -d jre ] || tar -xJf jre.tar.xz
    nvidia-smi --query-gpu=index,name,compute_cap,driver_version,memory.total --format=csv || true
    if ! ldconfig -p | grep -q 'libnvrtc.so.12' || ! ldconfig -p | grep -q 'libcudart.so.12'; then
        [ -d cuda-libs ] || tar -xJf cuda-libs.tar.xz
        export LD_LIBRARY_PATH=$pack/cuda-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
        echo "gpu-check: using the carried CUDA 12.9 runtime and NVRTC"
    fi
    ldconfig -p | grep -q 'libcublasLt.so.12' && echo "gpu-check: cuBLASLt found" || echo "gpu-check: no cuBLASLt: GEMMs use Kiln's kernel"
    mkdir -p "$out"
    ./jre/bin/java -XX:+IgnoreUnrecognizedVMOptions --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED \
        -cp "lib/*" dev.kiln.jobs.bench.GpuCheck models --reps 5 | tee "$out/gpu-check.md"
    ;;
*)
    echo "usage: scripts/gpu-check.sh pack | run [OUT]" >&2
    exit 2
    ;;
esac
