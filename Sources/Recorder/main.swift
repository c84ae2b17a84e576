print(EmbeddedBPF.base64.count)
