Console.WriteLine("placeholder: being written");
