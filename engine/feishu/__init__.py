"""Where the engine meets Feishu: outbound API activities, inbound ingress, the local stand-in.

Nothing here imports ``lark_oapi`` at module level: it takes ~2 s and 175 MB, so it is imported where
it is used.
"""
