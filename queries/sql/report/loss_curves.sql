-- loss_curves: validation loss per model over tokens seen (figure 1).
SELECT model, step, tokens, val_loss FROM metrics WHERE val_loss IS NOT NULL ORDER BY model, step
