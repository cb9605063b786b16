# Llama 3 405B pre-training as Megatron-LM arguments (Dubey et al. 2024, arXiv 2407.21783,
# Sec. 3.3.2 and Table 4: TP8 PP16 CP1 DP128 on 16,384 H100, seq 8192, 16M tokens = 2048
# sequences per step, 126 layers split 7 + 8x14 + 7). Assumed as in
# simulator/scenarios/llama3-405b-16k-54d.yaml: micro-batch 1, full recompute, ZeRO-1, here
# without interleaving (first/last stage layers are not divisible by a vpp of 4).
torchrun --nnodes 2048 --nproc-per-node 8 pretrain_gpt.py \
  --tensor-model-parallel-size 8 --pipeline-model-parallel-size 16 \
  --decoder-first-pipeline-num-layers 7 --decoder-last-pipeline-num-layers 7 \
  --sequence-parallel --recompute-granularity full --recompute-method uniform \
  --recompute-num-layers 1 --use-distributed-optimizer --overlap-grad-reduce \
  --overlap-param-gather --micro-batch-size 1 --global-batch-size 2048 --seq-length 8192 \
  --max-position-embeddings 8192 --num-layers 126 --hidden-size 16384 \
  --ffn-hidden-size 53248 --num-attention-heads 128 --group-query-attention \
  --num-query-groups 8 --swiglu --normalization RMSNorm --position-embedding-type rope \
  --untie-embeddings-and-output-weights --disable-add-bias-linear --vocab-size 128256 \
  --bf16 --data-path /data/llama3 --save /ckpt --lr 8e-5 --tokenizer-type HuggingFaceTokenizer
