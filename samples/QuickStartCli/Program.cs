using Lightning;
using QuickStartCli;

// The quickstart's autoencoder behind Lightning's CLI:
//   dotnet run --project samples/QuickStartCli -- fit --config samples/QuickStartCli/config.yaml
//   dotnet run --project samples/QuickStartCli -- fit --trainer.max_epochs=2 --model.latent_dim=8 --print_config
return LightningCli.Run<AutoEncoder, FashionMnistData>(args);
