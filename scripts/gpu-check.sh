#!/usr/bin/env bash
# The GPU check of the cuda backend, in one call on a GPU machine that has a driver but maybe no Java and no CUDA
# toolkit (the GPU machine takes at most 64 MiB of carried files per call).
#
#   scripts/gpu-check.sh pack          here: builds Kiln and writes target/gpu-check/ (a jlink'd Java 17 runtime and the
#                                      CUDA 12.9 runtime + NVRTC libraries as .tar.xz, the thin jars the cuda backend
#                                      needs, the reference models); prints its size
#   scripts/gpu-check.sh run [OUT [GpuCheck options]]
#                                      there (from the repository root, target/gpu-check carried): unpacks, checks the
#                                      cuda backend against PyTorch's outputs, times the seed MLP at batch 4096 and
#                                      65536 beside the host-to-device bandwidth, once on the CUDA 12.9 presets (carried
#                                      runtime) and once on the 13.3 presets over the machine's CUDA 13 libraries;
#                                      writes OUT/gpu-check-cuda12.md, OUT/gpu-check-cuda13.md (OUT: $OUT)
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
    version=$(sed -n "s:.*<cuda.presets.version>\(.*\)</cuda.presets.version>.*:\1:p" pom.xml | head -1)  # the default, not -Pcuda13's
    redist=$HOME/.m2/repository/org/bytedeco/cuda-redist/$version/cuda-redist-$version-linux-x86_64.jar
    [ -e "$redist" ] || mvn -B -q dependency:get -Dartifact="org.bytedeco:cuda-redist:$version:jar:linux-x86_64" -Dtransitive=false
    mkdir -p "$pack/cuda-libs"
    (cd "$pack/cuda-libs" && unzip -q -j "$redist" 'org/bytedeco/cuda/linux-x86_64/libcudart.so.*' \
        'org/bytedeco/cuda/linux-x86_64/libnvrtc.so.*' 'org/bytedeco/cuda/linux-x86_64/libnvrtc-builtins.so.*')
    tar -C "$pack" -cJf "$pack/cuda-libs.tar.xz" cuda-libs && rm -rf "$pack/cuda-libs"
    # Only the JNI libraries the backend loads (cudart, NVRTC, cuBLAS(Lt)): the presets' native jar also holds NPP,
    # cuDNN, cuSOLVER, ... which the device tool's 64 MiB would not hold twice.
    slim() { # slim SOURCE_JAR TARGET_JAR
        local tmp; tmp=$(mktemp -d)
        (cd "$tmp" && unzip -q "$1" && find . -name 'libjni*.so' ! -name 'libjnicudart.so' ! -name 'libjninvrtc.so' ! -name 'libjnicublas.so' -delete \
            && rm -rf META-INF/native-image && zip -q -r "$2" .)
        rm -rf "$tmp"
    }
    for jar in "$pack"/lib/cuda-*-linux-x86_64.jar; do slim "$jar" "$jar.slim" && mv "$jar.slim" "$jar"; done
    # A second set for CUDA 13 (JavaCPP's 13.3 presets on the GPU machine's own CUDA 13 libraries, cuBLASLt included):
    # the cuda package recompiled against those presets (their constants are inlined at compile time) goes first on
    # the class path.
    local13=13.3-9.25-1.5.14 javacpp13=1.5.14
    m2=$HOME/.m2/repository/org/bytedeco
    for a in "cuda:$local13" "cuda:$local13:jar:linux-x86_64" "javacpp:$javacpp13" "javacpp:$javacpp13:jar:linux-x86_64"; do
        mvn -B -q dependency:get -Dartifact="org.bytedeco:$a" -Dtransitive=false >/dev/null
    done
    mkdir -p "$pack/lib13/classes"
    cp "$m2/cuda/$local13/cuda-$local13.jar" "$m2/javacpp/$javacpp13/javacpp-$javacpp13.jar" "$m2/javacpp/$javacpp13/javacpp-$javacpp13-linux-x86_64.jar" "$pack/lib13/"
    slim "$m2/cuda/$local13/cuda-$local13-linux-x86_64.jar" "$pack/lib13/cuda-$local13-linux-x86_64.jar"
    cp13=$(ls "$pack"/lib/*.jar | grep -v '/cuda-\|/javacpp-' | paste -sd:):$(ls "$pack"/lib13/*.jar | paste -sd:)
    javac -nowarn -d "$pack/lib13/classes" -cp "$cp13" --add-modules jdk.incubator.vector engine/src/main/java/dev/kiln/engine/backend/cuda/*.java 2>&1 | grep -v incubat || true
    cp engine/src/main/resources/dev/kiln/engine/backend/cuda/kernels.cu "$pack/lib13/classes/dev/kiln/engine/backend/cuda/" 2>/dev/null || true
    du -sh "$pack" && du -sh "$pack"/*
    ;;
run)
    out=${2:-${OUT:-.}}
    [ -d "$pack" ] || { echo "gpu-check: $pack is missing: run 'scripts/gpu-check.sh pack' here and carry target/gpu-check" >&2; exit 2; }
    shift $(( $# > 1 ? 2 : 1 ))
    cd "$pack"
    mkdir -p "$out"
    [ -d jre ] || tar -xJf jre.tar.xz
    { nvidia-smi --query-gpu=index,name,compute_cap,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max --format=csv || true
      echo "CUDA libraries on this machine:"
      find /usr /opt -name 'libcudart.so.1[23]*' -o -name 'libnvrtc.so.1[23]*' -o -name 'libcublasLt.so.1[23]*' 2>/dev/null | sort; } | tee "$out/gpu-env.txt"
    java=(./jre/bin/java -XX:+IgnoreUnrecognizedVMOptions --add-modules=jdk.incubator.vector --enable-native-access=ALL-UNNAMED)
    # Each run is cut off after this many seconds (a hang must not eat the device time: one did, at JVM exit, before
    # DeviceQueue.close() was fixed); GPU_CHECK_LIMIT overrides.
    limit=${GPU_CHECK_LIMIT:-150}
    args=(models --reps 5 --batches 4096,16384,65536 --chunks auto,1,2,4,8 "$@")
    status=0
    # CUDA 12.9 (what Kiln builds against), on the carried runtime and NVRTC unless the machine has CUDA 12 itself.
    (
        if ! ldconfig -p | grep -q 'libnvrtc.so.12' || ! ldconfig -p | grep -q 'libcudart.so.12'; then
            [ -d cuda-libs ] || tar -xJf cuda-libs.tar.xz
            export LD_LIBRARY_PATH=$pack/cuda-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
            echo "gpu-check: CUDA 12.9 presets on the carried CUDA 12.9 runtime and NVRTC"
        fi
        timeout "$limit" "${java[@]}" -cp "lib/*" dev.kiln.jobs.bench.GpuCheck "${args[@]}"
    ) 2>&1 | tee "$out/gpu-check-cuda12.md" || status=1
    # CUDA 13.3 presets on the machine's own CUDA 13 libraries (cuBLASLt where a toolkit or PyTorch's wheels hold it).
    if [ -d lib13 ]; then
        dirs=$(find /usr /opt -name 'libcudart.so.13*' -o -name 'libnvrtc.so.13*' -o -name 'libcublasLt.so.13*' 2>/dev/null | xargs -r -n1 dirname | sort -u | paste -sd:)
        (
            export LD_LIBRARY_PATH=$dirs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
            echo "gpu-check: CUDA 13.3 presets on $dirs"
            cp13="lib13/classes:$(ls lib13/*.jar | paste -sd:):$(ls lib/*.jar | grep -v '/cuda-\|/javacpp-' | paste -sd:)"
            timeout "$limit" "${java[@]}" -cp "$cp13" dev.kiln.jobs.bench.GpuCheck "${args[@]}"
        ) 2>&1 | tee "$out/gpu-check-cuda13.md" || status=1
    fi
    exit $status
    ;;
*)
    echo "usage: scripts/gpu-check.sh pack | run [OUT]" >&2
    exit 2
    ;;
esac
